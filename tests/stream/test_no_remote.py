"""A project whose remote is unset or out of reach: what is in the cache is served and placed, as
``dvc checkout`` would; only a file that must be downloaded fails, with an error naming it."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from .conftest import last_json, md5, run_python, stream_python, write_script

READ = r"""
import hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as fobj:
            out[path] = hashlib.md5(fobj.read()).hexdigest()
    except OSError as exc:
        out[path] = [exc.errno, exc.strerror]
print(json.dumps(out))
"""

API = r"""
import hashlib, json, sys
import dvc_stream

with dvc_stream.streaming(sys.argv[1]) as broker:
    got = {}
    for path in sys.argv[2:]:
        with open(path, "rb") as fobj:
            got[path] = hashlib.md5(fobj.read()).hexdigest()
stats = broker.stats
print(json.dumps({"got": got, "cached": stats.cached_files, "failed": stats.failed_files}))
"""


@pytest.fixture
def cached(dvc_repo):
    """Every object of ``data/images`` in the cache, none in the workspace, no remote set."""
    dataset = dvc_repo.make_dataset("data/images", nfiles=6, size=100, depth=1, fanout=2)
    shutil.rmtree(dvc_repo.root / dataset.path)
    dvc_repo.dvc("remote", "remove", dvc_repo.remote_name)
    return dvc_repo, dataset


def _paths(dataset) -> dict[str, bytes]:
    return {f"{dataset.path}/{rel}": data for rel, data in sorted(dataset.files.items())}


def _drop_from_cache(repo, data: bytes) -> None:
    oid = md5(data)
    os.unlink(repo.root / ".dvc" / "cache" / "files" / "md5" / oid[:2] / oid[2:])


def test_hooks_serve_the_cache_without_a_remote(cached, tmp_path):
    repo, dataset = cached
    files = _paths(dataset)
    stats_file = tmp_path / "stats.json"
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(repo, script, *files, options=("--stats", str(stats_file)))
    assert last_json(proc) == {path: md5(data) for path, data in files.items()}
    assert repo.tracked_files(dataset.path) == dataset.files
    stats = json.loads(stats_file.read_text())
    assert (stats["demand_files"], stats["failed_files"]) == (0, 0)
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr


def test_api_serves_the_cache_without_a_remote(cached, tmp_path):
    repo, dataset = cached
    files = _paths(dataset)
    script = write_script(tmp_path, "api.py", API)
    got = last_json(run_python(repo, script, str(repo.root), *files))
    assert got == {
        "got": {path: md5(data) for path, data in files.items()},
        "cached": len(files),
        "failed": 0,
    }
    assert repo.tracked_files(dataset.path) == dataset.files


def test_a_file_not_in_the_cache_fails_alone_without_a_remote(cached, tmp_path):
    repo, dataset = cached
    files = _paths(dataset)
    absent, *present = files
    _drop_from_cache(repo, files[absent])
    stats_file = tmp_path / "stats.json"
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(
        repo, script, *files, options=("--prefetch", "none", "--stats", str(stats_file))
    )
    got = last_json(proc)
    assert got.pop(absent) == [
        5,
        f"failed to fetch '{absent}': it is not in the cache and no remote is set",
    ]
    assert got == {path: md5(files[path]) for path in present}
    assert not (repo.root / absent).exists()
    stats = json.loads(stats_file.read_text())
    assert (stats["cached_files"], stats["failed_files"]) == (len(present), 1)


def _unreachable(repo) -> None:
    repo.dvc("remote", "add", "-d", repo.remote_name, repo.remote_url)
    repo.set_endpoint("http://127.0.0.1:9")  # NOTE: the discard port: the connection is refused


def test_an_unreachable_remote_is_said_and_the_cache_served(cached, tmp_path):
    repo, dataset = cached
    _unreachable(repo)
    files = _paths(dataset)
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(repo, script, *files)
    assert last_json(proc) == {path: md5(data) for path, data in files.items()}
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, proc.stderr
    assert f"remote '{repo.remote_name}' is unreachable" in warnings[0]
    assert warnings[0].endswith("only the files in the cache can be read")
    assert repo.tracked_files(dataset.path) == dataset.files


UNREACHABLE = "it is not in the cache and the remote could not be reached"


def test_a_file_not_in_the_cache_fails_at_once_when_the_remote_is_unreachable(cached, tmp_path):
    # NOTE: the remote is not asked again after start-up: each download would wait out the
    # connection's retries (about 20 s a file here) only to fail with the start-up's reason.
    repo, dataset = cached
    _unreachable(repo)
    files = _paths(dataset)
    absent, *present = files
    _drop_from_cache(repo, files[absent])
    stats_file = tmp_path / "stats.json"
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(repo, script, *files, options=("--stats", str(stats_file)))
    got = last_json(proc)
    assert got.pop(absent) == [
        5,
        f"failed to fetch '{absent}' from remote '{repo.remote_name}': {UNREACHABLE}",
    ]
    assert got == {path: md5(files[path]) for path in present}
    stats = json.loads(stats_file.read_text())
    assert (stats["cached_files"], stats["failed_files"]) == (len(present), 1)
    assert "from cache, 1 failed; waited" in proc.stderr, proc.stderr


def test_without_the_start_up_check_the_first_failed_download_gives_up_on_the_remote(
    cached, tmp_path
):
    # With -j there is no start-up check: the first download finds the remote out of reach
    # (after its retries), and the files after it fail at once.
    repo, dataset = cached
    _unreachable(repo)
    files = _paths(dataset)
    first, second, third, *present = files
    for path in (first, second, third):
        _drop_from_cache(repo, files[path])
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(repo, script, *files, options=("-j", "4", "--prefetch", "none"))
    got = last_json(proc)
    prefix = f"failed to fetch '{{}}' from remote '{repo.remote_name}': "
    assert got.pop(first)[1].startswith(prefix.format(first) + "EndpointConnectionError: ")
    assert got.pop(second) == [5, prefix.format(second) + UNREACHABLE]
    assert got.pop(third) == [5, prefix.format(third) + UNREACHABLE]
    assert got == {path: md5(files[path]) for path in present}
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, proc.stderr
    assert f"remote '{repo.remote_name}' is unreachable: Could not connect" in warnings[0]


def test_a_remote_that_refuses_the_start_up_probe_is_not_called_unreachable(
    dvc_repo, latency_proxy, tmp_path
):
    # A 403 for one object (no list rights, say) is that object's answer, not the remote's:
    # the run neither warns nor gives up on the remote, and the downloads go ahead.
    dataset = dvc_repo.make_dataset("data/images", nfiles=4, size=100, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    dvcfile = yaml.safe_load((dvc_repo.root / "data/images.dvc").read_text())
    tree_oid = dvcfile["outs"][0]["md5"].removesuffix(".dir")
    probe = latency_proxy.add_fault(
        "status", method="HEAD", path_contains=tree_oid[2:], status=403, times=1
    )
    files = _paths(dataset)
    script = write_script(tmp_path, "read.py", READ)
    proc = stream_python(dvc_repo, script, *files)
    assert probe.times == 0, "the start-up probe was not refused: the test proves nothing"
    assert last_json(proc) == {path: md5(data) for path, data in files.items()}
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    assert dvc_repo.tracked_files(dataset.path) == dataset.files


STAT = r"""
import json, os, sys
out = {}
for path in sys.argv[1:]:
    try:
        out[path] = os.path.getsize(path)
    except OSError as exc:
        out[path] = [exc.errno, exc.strerror]
print(json.dumps(out))
"""


def test_the_size_of_a_cached_file_beside_one_not_in_the_cache(cached, tmp_path):
    # A size asks for the siblings' too, in passing: one that cannot be had fails only its own.
    repo, dataset = cached
    files = _paths(dataset)
    absent, *present = files
    _drop_from_cache(repo, files[absent])
    script = write_script(tmp_path, "stat.py", STAT)
    got = last_json(stream_python(repo, script, *reversed(files)))
    assert got.pop(absent) == [
        5,
        f"failed to fetch '{absent}': it is not in the cache and no remote is set",
    ]
    assert got == {path: len(files[path]) for path in present}
