"""Faults on the way from the remote: retried when transient, an OSError when not, never a
partial file, and the broker goes on serving everything else."""

from __future__ import annotations

import json
import os
import sys

import pytest

from .conftest import READ, last_json, md5, partial_files, stream, temp_files, write_script

SIZE = 256 * 1024
PERSISTENT = 1000
# NOTE: a stall longer than the remote's read timeout is a timeout for the client.
READ_TIMEOUT_S = 1
STALL_S = 3
ROUNDS = 3

# (name, proxy fault kind, its arguments, times it fires)
TRANSIENT = [
    ("500 once", "status", {"status": 500}, 1),
    ("503 once", "status", {"status": 503}, 1),
    ("503 twice", "status", {"status": 503}, 2),
    ("reset mid-body", "reset", {"after_bytes": 64 * 1024}, 1),
    ("reset before the head", "reset", {"after_bytes": 0}, 1),
    ("drop mid-body", "drop", {"after_bytes": 100 * 1024}, 1),
    ("drop mid-body twice", "drop", {"after_bytes": 4096}, 2),
    ("stall", "stall", {"stall_s": STALL_S}, 1),
]
FATAL_QUICK = [
    ("403 always", "status", {"status": 403}),
    ("500 always", "status", {"status": 500}),
    ("503 always", "status", {"status": 503}),
    ("reset always", "reset", {"after_bytes": 4096}),
    ("drop always", "drop", {"after_bytes": 4096}),
]
# NOTE: minutes: every attempt of every retry layer waits out the read timeout.
FATAL = [*FATAL_QUICK, ("stall always", "stall", {"stall_s": STALL_S})]


@pytest.fixture
def faulty(dvc_repo, latency_proxy):
    n = len(TRANSIENT) + len(FATAL) + 4
    dataset = dvc_repo.make_dataset("data/images", nfiles=n, size=SIZE, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.dvc("remote", "modify", "--local", "storage", "read_timeout", str(READ_TIMEOUT_S))
    dvc_repo.wipe()
    return dvc_repo, dataset


def run_with_faults(repo, dataset, proxy, tmp_path, transient, fatal) -> dict[str, int]:
    """One ``dvc stream`` run that reads every file, each with its own fault; returns how many
    times each fault fired."""
    rels = sorted(dataset.files)
    plans = [(name, kind, extra, times) for name, kind, extra, times in transient]
    plans += [(name, kind, extra, PERSISTENT) for name, kind, extra in fatal]
    fatal_rels = set(rels[len(transient) : len(plans)])
    faults = []
    for rel, (name, kind, extra, times) in zip(rels, plans, strict=False):
        oid = md5(dataset.files[rel])
        fault = proxy.add_fault(kind, method="GET", path_contains=oid[2:], times=times, **extra)
        faults.append((name, times, fault))
    script = write_script(tmp_path, "read.py", READ)
    paths = [f"data/images/{rel}" for rel in rels]
    proc = stream(repo, sys.executable, script, *paths, options=("-j", "16", "--prefetch", "none"))
    got = last_json(proc)
    for rel, path in zip(rels, paths, strict=True):
        if rel in fatal_rels:
            kind, _errno, message = got[path]
            assert kind == "OSError", got[path]
            assert path in message and "'storage'" in message, message
            assert not os.path.lexists(repo.root / path)
        else:  # retried, or never faulty: the broker kept serving
            assert got[path] == ["ok", SIZE, md5(dataset.files[rel])], got[path]
    assert partial_files(repo, "data/images", dataset.files) == []
    assert temp_files(repo) == []
    proxy.clear_faults()
    # NOTE: a fault removes itself after its last firing, leaving times at 0.
    return {name: times - fault.times for name, times, fault in faults}


@pytest.mark.heavy
def test_transient_faults_are_retried_fatal_ones_are_oserrors(faulty, latency_proxy, tmp_path):
    repo, dataset = faulty
    fired = run_with_faults(repo, dataset, latency_proxy, tmp_path, TRANSIENT, FATAL_QUICK)
    for name, _kind, _extra, times in TRANSIENT:
        assert fired[name] == times, fired
    for name, *_ in FATAL_QUICK:
        # bounded: the fetcher's attempts times the S3 client's own
        assert 3 <= fired[name] <= 15, fired
    print("faults fired:", json.dumps(fired))


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_fault_matrix_repeated(faulty, latency_proxy, tmp_path):
    """Every fault, several rounds; once, the stall that outlives every retry (minutes)."""
    repo, dataset = faulty
    totals: dict[str, int] = {}
    for round_ in range(ROUNDS):
        repo.wipe()
        fatal = FATAL if round_ == 0 else FATAL_QUICK
        fired = run_with_faults(repo, dataset, latency_proxy, tmp_path, TRANSIENT, fatal)
        for name, count in fired.items():
            totals[name] = totals.get(name, 0) + count
    # NOTE: bounded, but multiplied: fetcher attempts x S3 client attempts x s3fs read retries.
    assert totals["stall always"] <= 75, totals
    print("faults fired:", json.dumps(totals))


@pytest.mark.heavy
def test_a_remote_that_stops_sending_fails_in_bounded_time(dvc_repo, latency_proxy, tmp_path):
    # NOTE: the remote's own read timeout stays at its 60 s default: only the stall watchdog
    # (2 s here, 30 s by default) ends each attempt, and the fetcher's three attempts end the wait.
    dataset = dvc_repo.make_dataset("data/images", nfiles=2, size=SIZE, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    stalled, healthy = sorted(dataset.files)
    oid = md5(dataset.files[stalled])
    latency_proxy.add_fault(
        "stall", method="GET", path_contains=oid[2:], times=PERSISTENT, stall_s=600
    )
    script = write_script(tmp_path, "read.py", READ)
    paths = [f"data/images/{stalled}", f"data/images/{healthy}"]
    env = {**dvc_repo.env, "DVC_STREAM_STALL_TIMEOUT": "2"}
    proc = stream(
        dvc_repo, sys.executable, script, *paths, options=("--prefetch", "none"), env=env
    )
    got = last_json(proc)
    kind, _errno, message = got[paths[0]]
    assert kind == "OSError" and "sent nothing for 2 s" in message, message
    assert got[paths[1]] == ["ok", SIZE, md5(dataset.files[healthy])]
    stalled_gets = [r for r in latency_proxy.request_log if r[0] == "GET" and oid[2:] in r[1]]
    assert len(stalled_gets) == 3, stalled_gets
    assert partial_files(dvc_repo, "data/images", dataset.files) == []
    assert temp_files(dvc_repo) == []
