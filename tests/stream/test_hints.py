"""Hints: ``dvc_stream.prefetch``'s order, size, and turns between the processes that send them;
and a DataLoader's order, hinted by the hooks.

Each program runs under ``-j 1``, so the hinted objects are downloaded one at a
time, in the order the prefetcher takes them, and the proxy's request log shows that order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvc_stream.stream.readahead import RAMP_READS

from .conftest import md5, object_gets, stream_python, write_script

FAKE_TORCH = Path(__file__).parent.parent / "fake_torch"

# The end of both programs: wait until every object of ``cached`` is in the cache.
WAIT_FOR_CACHE = r"""
deadline = time.monotonic() + 120
while not all(os.path.exists(path) for path in cached):
    assert time.monotonic() < deadline, "the hinted files never arrived"
    time.sleep(0.02)
print("ok")
"""

# Hints the files of argv[1] (a JSON list of lists of relative paths, one prefetch() call each,
# with argv[3] absent names after the first call's first three), then waits until the objects
# argv[2] lists are all in the cache.
HINT_AND_WAIT = (
    r"""
import json, os, sys, time
import dvc_stream

calls, cached, padding = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
absent = [f"data/images/absent-{i:06d}-{'x' * 230}" for i in range(padding)]
first = calls[0]
dvc_stream.prefetch(first[:3] + absent + first[3:])
for paths in calls[1:]:
    dvc_stream.prefetch(paths)
"""
    + WAIT_FOR_CACHE
)

# Two processes hint their own files: the parent first, then a forked child, while the parent's
# downloads are still going.
TWO_PROCESSES = (
    r"""
import json, multiprocessing, os, sys, time
import dvc_stream

mine, theirs, cached = (json.loads(arg) for arg in sys.argv[1:4])

def child(go):
    go.wait()
    dvc_stream.prefetch(theirs)

ctx = multiprocessing.get_context("fork")
go = ctx.Event()
proc = ctx.Process(target=child, args=(go,))
proc.start()
dvc_stream.prefetch(mine)
go.set()
proc.join()
"""
    + WAIT_FOR_CACHE
)


def _key(data: bytes) -> str:
    """Where an object lives under ``files/md5/``, in the cache and on the remote."""
    oid = md5(data)
    return f"{oid[:2]}/{oid[2:]}"


def _cache_path(data: bytes) -> str:
    return f".dvc/cache/files/md5/{_key(data)}"


def _hinted(dvc_repo, latency_proxy, tmp_path, script_text, *args, stats_file=None):
    script = write_script(tmp_path, "hint.py", script_text)
    latency_proxy.reset_counters()
    options = ("-j", "1", "--prefetch", "none")
    if stats_file is not None:
        options += ("--stats", str(stats_file))
    proc = stream_python(dvc_repo, script, *args, options=options)
    assert proc.stdout.strip().splitlines()[-1] == "ok", proc.stderr
    return [path.rsplit("/files/md5/", 1)[1] for path in object_gets(latency_proxy.request_log)]


def test_a_hint_longer_than_a_request_frame_keeps_its_order(dvc_repo, latency_proxy, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=5, size=3000, depth=1, fanout=1)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    names = sorted(dataset.files, reverse=True)  # not the listing order
    paths = [f"data/images/{name}" for name in names]
    stats_file = tmp_path / "stats.json"
    # 8,000 absent names of about 300 bytes: 2.5 MB, more than two request frames may hold
    gets = _hinted(
        dvc_repo,
        latency_proxy,
        tmp_path,
        HINT_AND_WAIT,
        json.dumps([paths[:4], paths[4:]]),
        json.dumps([_cache_path(dataset.files[name]) for name in names]),
        "8000",
        stats_file=stats_file,
    )
    # the fourth file came in the frame after the first three; the second call's after both
    assert gets == [_key(dataset.files[name]) for name in names]
    stats = json.loads(stats_file.read_text())
    assert stats["prefetched_files"] == 5
    assert stats["demand_files"] == 0


def test_hints_of_two_processes_take_turns(dvc_repo, latency_proxy, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=16, size=3000, depth=1, fanout=1)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    latency_proxy.rtt_ms = 30  # each download outlasts the child's hint by far
    names = sorted(dataset.files)
    mine, theirs = names[:8], names[8:]
    gets = _hinted(
        dvc_repo,
        latency_proxy,
        tmp_path,
        TWO_PROCESSES,
        json.dumps([f"data/images/{name}" for name in mine]),
        json.dumps([f"data/images/{name}" for name in theirs]),
        json.dumps([_cache_path(data) for data in dataset.files.values()]),
    )
    assert len(gets) == 16
    position = {name: gets.index(_key(dataset.files[name])) for name in names}
    # neither process waits for the other's whole list
    assert position[theirs[0]] < position[mine[-1]]
    assert position[mine[-1]] < position[theirs[-1]]
    # and each one's files arrive in its own order
    assert sorted(mine, key=position.get) == mine
    assert sorted(theirs, key=position.get) == theirs


# A DataLoader (tests/fake_torch's, which draws its order as torch's does) over a dataset that
# keeps its files as torchvision's do; a training step of 50 ms per batch of 4.
SAMPLED = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from torch.utils.data.dataloader import DataLoader

class Files:
    def __init__(self, paths):
        self.samples = [(path, 0) for path in paths]

    def __getitem__(self, index):
        with open(self.samples[index][0], "rb") as fobj:
            return fobj.read().hex()

batches, paths = json.loads(sys.argv[2]), json.loads(sys.argv[3])
read = []
for batch in DataLoader(Files(paths), batches):
    read += batch
    time.sleep(0.05)
print(json.dumps(read))
"""


@pytest.mark.parametrize("policy", ["sampler", "none"])
def test_a_dataloader_order_is_hinted_by_the_hooks(dvc_repo, latency_proxy, tmp_path, policy):
    dataset = dvc_repo.make_dataset("data/images", nfiles=16, size=3000, depth=1, fanout=1)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    names = sorted(dataset.files)
    order = [names[(7 * i) % 16] for i in range(16)]  # not the listing order
    script = write_script(tmp_path, "sampled.py", SAMPLED)
    stats_file = tmp_path / "stats.json"
    latency_proxy.reset_counters()
    proc = stream_python(
        dvc_repo,
        script,
        str(FAKE_TORCH),
        json.dumps([[names.index(n) for n in order[i : i + 4]] for i in range(0, 16, 4)]),
        json.dumps([f"data/images/{name}" for name in names]),
        options=("-j", "1", "--prefetch", policy, "--stats", str(stats_file)),
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        dataset.files[name].hex() for name in order
    ]
    gets = [path.rsplit("/files/md5/", 1)[1] for path in object_gets(latency_proxy.request_log)]
    assert gets == [_key(dataset.files[name]) for name in order]
    stats = json.loads(stats_file.read_text())
    assert stats["demand_files"] + stats["prefetched_files"] == 16
    if policy == "sampler":
        assert stats["prefetched_files"] > stats["demand_files"], stats
    else:
        assert stats["prefetched_files"] == 0, stats


def test_under_auto_a_dataloader_order_is_all_that_is_fetched(dvc_repo, latency_proxy, tmp_path):
    """A DataLoader over half a directory's files, more of them than the readahead's ramp: its
    sampler's order is known, so the reads it foretells give the readahead no evidence."""
    dataset = dvc_repo.make_dataset("data/images", nfiles=80, size=3000, depth=1, fanout=1)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    chosen = sorted(dataset.files)[::2]
    assert len(chosen) > RAMP_READS
    order = [(7 * i) % len(chosen) for i in range(len(chosen))]
    script = write_script(tmp_path, "sampled.py", SAMPLED)
    latency_proxy.reset_counters()
    proc = stream_python(
        dvc_repo,
        script,
        str(FAKE_TORCH),
        json.dumps([order[i : i + 4] for i in range(0, len(order), 4)]),
        json.dumps([f"data/images/{name}" for name in chosen]),
        options=("--prefetch", "auto"),
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        dataset.files[chosen[i]].hex() for i in order
    ]
    gets = [path.rsplit("/files/md5/", 1)[1] for path in object_gets(latency_proxy.request_log)]
    assert sorted(gets) == sorted(_key(dataset.files[name]) for name in chosen)
