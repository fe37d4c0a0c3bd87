"""What ``dvc stream`` fetches, how often, into what state, and how it fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dvc_stream.stream.prefetcher import BACKGROUND_BYTES_PER_JOB
from dvc_stream.stream.readahead import READS_PER_FILE
from dvc_stream.testing.cli import run_dvc

from .conftest import last_json, md5, object_gets, stream, stream_python, write_script

READ_FILES = r"""
import hashlib, json, sys
out = {}
for path in sys.argv[1:]:
    with open(path, "rb") as fobj:
        out[path] = hashlib.md5(fobj.read()).hexdigest()
print(json.dumps(out))
"""


def _leftovers(root) -> list[str]:
    return [
        os.path.join(top, name)
        for top, _dirs, files in os.walk(root)
        for name in files
        if "dvc-stream-tmp" in name
    ]


@pytest.mark.heavy
def test_subset_fetches_only_what_is_opened(dvc_repo, latency_proxy, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=500, size=64, depth=1, fanout=4)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    script = write_script(tmp_path, "read.py", READ_FILES)
    chosen = ["d0/f00000.bin", "d1/f00001.bin", "d2/f00254.bin"]
    paths = [f"data/images/{rel}" for rel in chosen]
    stats_file = tmp_path / "stats.json"

    latency_proxy.reset_counters()
    proc = stream_python(
        dvc_repo, script, *paths, options=("--prefetch", "none", "--stats", str(stats_file))
    )
    got = last_json(proc)
    assert got == {p: md5(dataset.files[rel]) for p, rel in zip(paths, chosen, strict=True)}
    gets = object_gets(latency_proxy.request_log)
    assert sorted(gets) == sorted(
        object_gets(latency_proxy.request_log, md5(dataset.files[rel]))[0] for rel in chosen
    )
    assert len(gets) == 3, latency_proxy.request_log
    stats = json.loads(stats_file.read_text())
    assert stats["demand_files"] == 3
    assert stats["demand_bytes"] == 3 * 64
    assert stats["prefetched_files"] == 0
    assert stats["failed_files"] == 0
    assert stats["exit_code"] == 0
    assert stats["prefetch"] == "none"
    assert "dvc stream: fetched 3 files" in proc.stderr
    # only the opened files are in the workspace
    present = dvc_repo.tracked_files("data/images")
    assert present == {rel: dataset.files[rel] for rel in chosen}
    assert not _leftovers(dvc_repo.root / "data")

    # a second run finds everything it needs locally
    latency_proxy.reset_counters()
    proc = stream_python(
        dvc_repo, script, *paths, options=("--prefetch", "none", "--stats", str(stats_file))
    )
    assert last_json(proc) == got
    assert object_gets(latency_proxy.request_log) == []
    stats = json.loads(stats_file.read_text())
    assert stats["demand_files"] == 0 and stats["cached_files"] == 0

    # DVC sees the partial directory as unchanged (tests/workspace), and `dvc pull` completes it
    assert dvc_repo.dvc("status", "-q", check=False).returncode == 0
    data_status = json.loads(dvc_repo.dvc("data", "status", "--json").stdout)
    assert "uncommitted" not in data_status, data_status
    dvc_repo.dvc("pull", "-q")
    assert dvc_repo.tracked_files("data/images") == dataset.files
    assert dvc_repo.dvc("status", "-q", check=False).returncode == 0


# Lists argv[1], sums the sizes of its files, reads int(argv[2]) of them spread over the listing,
# then waits argv[3] seconds, as a notebook that looks at a few files of a folder would.
EXPLORE = r"""
import json, os, sys, time
top, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
names = sorted(os.listdir(top))
total = sum(os.path.getsize(os.path.join(top, name)) for name in names)
for name in names[:: len(names) // count][:count] if count else []:
    with open(os.path.join(top, name), "rb") as fobj:
        fobj.read()
time.sleep(pause)
print(json.dumps({"listed": len(names), "total": total}))
"""


def _explore(repo, latency_proxy, tmp_path, count: int) -> dict:
    stats_file = tmp_path / "stats.json"
    script = write_script(tmp_path, "explore.py", EXPLORE)
    latency_proxy.reset_counters()
    proc = stream_python(
        repo, script, "data/images", str(count), "1", options=("--stats", str(stats_file))
    )
    assert last_json(proc) == {"listed": 60, "total": 60 * 1000}
    return {"gets": object_gets(latency_proxy.request_log), **json.loads(stats_file.read_text())}


def test_listing_and_sizes_download_nothing(dvc_repo, latency_proxy, tmp_path):
    dvc_repo.make_dataset("data/images", nfiles=60, size=1000, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    got = _explore(dvc_repo, latency_proxy, tmp_path, 0)
    assert got["prefetch"] == "auto"
    assert got["gets"] == []
    assert not (dvc_repo.root / "data/images").exists()


@pytest.mark.heavy
def test_a_few_reads_download_a_file_more(dvc_repo, latency_proxy, tmp_path):
    dvc_repo.make_dataset("data/images", nfiles=60, size=1000, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    got = _explore(dvc_repo, latency_proxy, tmp_path, 4)
    assert got["demand_files"] == 4
    assert got["prefetched_files"] <= 4 // READS_PER_FILE == 1
    assert 4 <= len(got["gets"]) == len(set(got["gets"])) <= 5


DEDUP = r"""
import hashlib, json, multiprocessing as mp, sys, threading


def reader(path, barrier, queue, nthreads):
    digests = []
    lock = threading.Lock()
    local = threading.Barrier(nthreads)

    def one():
        local.wait()
        with open(path, "rb") as fobj:
            data = fobj.read()
        with lock:
            digests.append([len(data), hashlib.md5(data).hexdigest()])

    threads = [threading.Thread(target=one) for _ in range(nthreads)]
    barrier.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(digests)


if __name__ == "__main__":
    path, nproc, nthreads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(nproc), ctx.Queue()
    args = (path, barrier, queue, nthreads)
    procs = [ctx.Process(target=reader, args=args) for _ in range(nproc)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    print(json.dumps({"results": results, "exitcodes": [p.exitcode for p in procs]}))
"""


@pytest.mark.heavy
def test_concurrent_readers_share_one_download(dvc_repo, latency_proxy, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=8, size=256 * 1024, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    rel = sorted(dataset.files)[3]
    content = dataset.files[rel]
    script = write_script(tmp_path, "dedup.py", DEDUP)
    latency_proxy.reset_counters()
    got = last_json(stream_python(dvc_repo, script, f"data/images/{rel}", "4", "8"))
    assert got["exitcodes"] == [0, 0, 0, 0]
    flat = [d for per_process in got["results"] for d in per_process]
    assert flat == [[len(content), md5(content)]] * 32
    assert len(object_gets(latency_proxy.request_log, md5(content))) == 1
    assert len(object_gets(latency_proxy.request_log)) == 1
    assert (dvc_repo.root / "data/images" / rel).read_bytes() == content


TRAIN = r"""
import hashlib, json, multiprocessing as mp, os, sys

ROOT = "data/images"


def load(path):
    with open(os.path.join(ROOT, path), "rb") as fobj:
        data = fobj.read()
    return path, os.path.getsize(os.path.join(ROOT, path)), hashlib.md5(data).hexdigest()


if __name__ == "__main__":
    method = sys.argv[1]
    files = sorted(
        os.path.relpath(os.path.join(top, name), ROOT)
        for top, _dirs, names in os.walk(ROOT)
        for name in names
    )
    ctx = mp.get_context(method)
    seen = {}
    for epoch in range(2):
        with ctx.Pool(3) as pool:
            for path, size, digest in pool.imap_unordered(load, files, chunksize=2):
                seen.setdefault(path, set()).add((size, digest))
    print(json.dumps({p: sorted(v) for p, v in seen.items()}))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.heavy
def test_pool_training_loop(dvc_repo, tmp_path, method):
    dataset = dvc_repo.make_dataset(
        "data/images", nfiles=30, depth=2, fanout=2, sizes=lambda i: 1000 + 97 * i
    )
    dvc_repo.wipe()
    script = write_script(tmp_path, "train.py", TRAIN)
    stats_file = tmp_path / "stats.json"
    proc = stream_python(dvc_repo, script, method, options=("--stats", str(stats_file)))
    got = last_json(proc)
    assert got == {rel: [[len(data), md5(data)]] for rel, data in sorted(dataset.files.items())}
    assert dvc_repo.tracked_files("data/images") == dataset.files
    stats = json.loads(stats_file.read_text())
    assert stats["failed_files"] == 0
    assert stats["exit_code"] == 0
    # every object came down exactly once, on demand or ahead of it
    assert stats["demand_files"] + stats["prefetched_files"] + stats["cached_files"] == 30
    assert stats["demand_bytes"] + stats["prefetched_bytes"] + stats["cached_bytes"] == sum(
        map(len, dataset.files.values())
    )


@pytest.fixture
def small(dvc_repo):
    dataset = dvc_repo.make_dataset("data/images", nfiles=6, size=100, depth=1, fanout=2)
    dvc_repo.wipe()
    return dvc_repo, dataset


def test_exit_code_propagates(small, tmp_path):
    repo, _ = small
    script = write_script(
        tmp_path,
        "exit.py",
        "import sys\nprint(len(open('data/images/d0/f00000.bin', 'rb').read()))\nsys.exit(3)\n",
    )
    proc = stream_python(repo, script, check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == "100"


def test_command_not_found(small):
    repo, _ = small
    proc = stream(repo, "dvc-stream-no-such-command", "arg", check=False)
    assert proc.returncode == 127
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert "dvc-stream-no-such-command" in errors[0]
    assert "not found" in errors[0]


def test_not_a_dvc_repo(dvc_repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_dvc(
        "stream", "--", sys.executable, "-c", "pass", cwd=elsewhere, env=dvc_repo.env, check=False
    )
    assert proc.returncode == 253, proc.stderr
    assert "not inside of a DVC repository" in proc.stderr


MISSING = r"""
import json, sys
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as fobj:
            out[path] = ["ok", len(fobj.read())]
    except OSError as exc:
        out[path] = [type(exc).__name__, exc.errno, str(exc), exc.filename]
print(json.dumps(out))
"""


def test_no_remote_and_nothing_cached(small, tmp_path):
    """A fresh clone whose remote is removed: the run starts, and the program's open fails with
    an error that says why, naming the directory; nothing is placed."""
    repo, _ = small
    clone = repo.clone()
    clone.dvc("remote", "remove", clone.remote_name)
    assert "storage" not in (clone.root / ".dvc" / "config").read_text()
    script = write_script(tmp_path, "missing.py", MISSING)
    proc = stream_python(clone, script, "data/images/d0/f00000.bin")
    (kind, errno_, message, _filename) = last_json(proc)["data/images/d0/f00000.bin"]
    assert (kind, errno_) == ("OSError", 5)
    expected = "the tree of 'data/images' ("
    assert expected in message and "is not in the cache and no remote is set" in message
    warnings = [line for line in proc.stderr.splitlines() if expected in line]
    assert len(warnings) == 1, proc.stderr
    assert "broker failed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (clone.root / "data/images").exists()


def test_object_missing_on_remote(small, moto_server, tmp_path):
    repo, dataset = small
    bucket = repo.remote_url.split("/")[2]
    victim = "d1/f00003.bin"
    oid = md5(dataset.files[victim])
    moto_server.client().delete_object(Bucket=bucket, Key=f"store/files/md5/{oid[:2]}/{oid[2:]}")
    script = write_script(tmp_path, "missing.py", MISSING)
    stats_file = tmp_path / "stats.json"
    good, bad = "data/images/d0/f00000.bin", f"data/images/{victim}"
    proc = stream_python(
        repo, script, good, bad, options=("--prefetch", "none", "--stats", str(stats_file))
    )
    got = last_json(proc)
    assert got[good] == ["ok", 100]
    kind, _errno, message, filename = got[bad]
    assert kind == "OSError", got[bad]
    assert victim in message or victim in (filename or ""), got[bad]
    assert "storage" in message, got[bad]
    assert not os.path.lexists(repo.root / bad)
    assert not _leftovers(repo.root / "data")
    assert json.loads(stats_file.read_text())["failed_files"] == 1


def test_from_a_subdirectory(small, tmp_path):
    repo, dataset = small
    script = write_script(tmp_path, "read.py", READ_FILES)
    proc = stream_python(repo, script, "images/d0/f00002.bin", cwd=repo.root / "data")
    assert last_json(proc) == {"images/d0/f00002.bin": md5(dataset.files["d0/f00002.bin"])}


def test_with_dvc_cd(small, tmp_path):
    repo, dataset = small
    script = write_script(tmp_path, "read.py", READ_FILES)
    proc = run_dvc(
        "--cd",
        repo.root,
        "stream",
        "--prefetch",
        "none",
        "--",
        sys.executable,
        script,
        "data/images/d1/f00001.bin",
        cwd=tmp_path,
        env=repo.env,
    )
    assert last_json(proc) == {"data/images/d1/f00001.bin": md5(dataset.files["d1/f00001.bin"])}


LIST_AND_READ = r"""
import hashlib, json, os, sys
root = sys.argv[1]
out = {}
for top, _dirs, names in os.walk(root):
    for name in sorted(names):
        path = os.path.join(top, name)
        with open(path, "rb") as fobj:
            out[os.path.relpath(path, root)] = hashlib.md5(fobj.read()).hexdigest()
print(json.dumps(out))
"""


@pytest.mark.parametrize("policy", ["auto", "listed", "touched"])
def test_prefetch_never_downloads_twice(dvc_repo, latency_proxy, tmp_path, policy):
    dataset = dvc_repo.make_dataset("data/images", nfiles=40, size=2000, depth=1, fanout=2)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    script = write_script(tmp_path, "all.py", LIST_AND_READ)
    stats_file = tmp_path / "stats.json"
    latency_proxy.reset_counters()
    proc = stream_python(
        dvc_repo, script, "data/images", options=("--prefetch", policy, "--stats", str(stats_file))
    )
    assert last_json(proc) == {rel: md5(data) for rel, data in dataset.files.items()}
    gets = object_gets(latency_proxy.request_log)
    assert len(gets) == len(set(gets)) == 40
    stats = json.loads(stats_file.read_text())
    assert stats["demand_files"] + stats["prefetched_files"] == 40
    assert stats["demand_bytes"] + stats["prefetched_bytes"] == 40 * 2000
    assert stats["cached_files"] == 0
    assert stats["prefetch"] == policy
    assert stats["background_bytes"] == stats["jobs"] * BACKGROUND_BYTES_PER_JOB
    assert dvc_repo.tracked_files("data/images") == dataset.files
    assert not _leftovers(dvc_repo.root / "data")


def test_local_copy_wins(small, tmp_path):
    repo, dataset = small
    local = repo.root / "data/images/d0/f00000.bin"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"edited locally")
    script = write_script(tmp_path, "read.py", READ_FILES)
    other = "data/images/d0/f00002.bin"
    proc = stream_python(repo, script, "data/images/d0/f00000.bin", other)
    assert last_json(proc) == {
        "data/images/d0/f00000.bin": md5(b"edited locally"),
        other: md5(dataset.files["d0/f00002.bin"]),
    }
    assert local.read_bytes() == b"edited locally"


def test_unusual_file_names(dvc_repo, tmp_path):
    names = ["a b.txt", "ünïcødé.txt", "x#y%z.bin", "sub dir/q?.txt", "-dash.txt"]
    base = dvc_repo.root / "data" / "odd"
    files = {}
    for i, name in enumerate(names):
        files[name] = f"content {i} of {name}\n".encode()
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(files[name])
    dvc_repo.dvc("add", "-q", "data/odd")
    dvc_repo.git("add", "data/odd.dvc", "data/.gitignore")
    dvc_repo.commit("odd names")
    dvc_repo.push()
    dvc_repo.wipe()
    script = write_script(tmp_path, "all.py", LIST_AND_READ)
    got = last_json(stream_python(dvc_repo, script, "data/odd"))
    assert got == {name: md5(data) for name, data in files.items()}
    assert dvc_repo.tracked_files("data/odd") == files


EXISTENCE_CHECKS = r"""
import json, os, sys
top = sys.argv[1]
names = sorted(os.listdir(top))
print(json.dumps({
    "exists": all(os.path.exists(os.path.join(top, n)) for n in names),
    "isfile": [os.path.isfile(os.path.join(top, n)) for n in names[:3]],
    "isdir": os.path.isdir(top),
    "absent": os.path.exists(os.path.join(top, "absent.bin")),
}))
"""


def test_existence_checks_send_no_requests(dvc_repo, latency_proxy, tmp_path):
    dvc_repo.make_dataset("data/images", nfiles=40, size=64, depth=0)
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    dvc_repo.wipe()
    script = write_script(tmp_path, "exists.py", EXISTENCE_CHECKS)
    proc = stream_python(dvc_repo, script, "data/images")
    latency_proxy.reset_counters()
    proc = stream_python(dvc_repo, script, "data/images")
    assert last_json(proc) == {
        "exists": True,
        "isfile": [True, True, True],
        "isdir": True,
        "absent": False,
    }
    # NOTE: the two HEADs of the .dir object measure the round trip at start-up; a stat of each
    # file would have cost a HEAD of its object
    assert [r for r in latency_proxy.request_log if not r[1].endswith(".dir")] == []
    assert not (dvc_repo.root / "data/images").exists()


def _other_filesystem(path: os.PathLike[str]) -> str | None:
    """A writable directory on another filesystem than ``path``, such as a tmpfs."""
    for candidate in ("/dev/shm", "/run/shm"):
        if (
            os.path.isdir(candidate)
            and os.access(candidate, os.W_OK)
            and os.stat(candidate).st_dev != os.stat(path).st_dev
        ):
            return candidate
    return None


@pytest.fixture
def elsewhere(small):
    """A new directory on another filesystem than the repo's (a tmpfs, say); removed after."""
    repo, _ = small
    other = _other_filesystem(repo.root)
    if other is None:
        pytest.skip("no writable filesystem other than the repo's")
    path = Path(tempfile.mkdtemp(prefix="dvc-stream-", dir=other))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def output_elsewhere(small, elsewhere):
    """``small``'s data/images kept on another filesystem, behind a symlink (a bigger disk)."""
    repo, _ = small
    (repo.root / "data" / "images").symlink_to(elsewhere, target_is_directory=True)
    return elsewhere


@pytest.mark.parametrize("prefetch", ["none", "auto"])
def test_output_on_another_filesystem(small, output_elsewhere, tmp_path, prefetch):
    # No hard link joins the staging directory in .dvc/tmp to the output, so each file is
    # staged beside its real name.
    repo, dataset = small
    script = write_script(tmp_path, "read.py", READ_FILES)
    expected = {f"data/images/{rel}": md5(data) for rel, data in dataset.files.items()}
    proc = stream_python(repo, script, *expected, options=("--prefetch", prefetch))
    assert last_json(proc) == expected
    for rel, data in dataset.files.items():
        assert (output_elsewhere / rel).read_bytes() == data
    assert not _leftovers(output_elsewhere) and not _leftovers(repo.root)
    assert repo.dvc("status", "-q", check=False).returncode == 0


def test_a_killed_runs_in_place_files_are_removed(small, output_elsewhere, tmp_path):
    # What a run killed while staging files beside their names leaves: its record of those
    # directories in .dvc/tmp, and a temporary file. Another run's file, alive, is kept.
    repo, dataset = small
    target = output_elsewhere
    (target / "d0").mkdir()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    dead_pid = exited.pid
    stale = target / "d0" / f".f00000.bin.{dead_pid}.0123456789ab.dvc-stream-tmp"
    alive = target / "d0" / f".f00002.bin.{os.getpid()}.0123456789ab.dvc-stream-tmp"
    stale.write_bytes(b"half")
    alive.write_bytes(b"half")
    staging = repo.root / ".dvc" / "tmp" / "stream-place"
    staging.mkdir(parents=True)
    (staging / f"{dead_pid}.in-place-dirs").write_text(f"{target / 'd0'}\n")
    script = write_script(tmp_path, "read.py", READ_FILES)
    path = f"data/images/{next(iter(dataset.files))}"
    proc = stream_python(repo, script, path)
    assert last_json(proc) == {path: md5(dataset.files[path.removeprefix("data/images/")])}
    assert not stale.exists()
    assert alive.read_bytes() == b"half"
    assert not (staging / f"{dead_pid}.in-place-dirs").exists()


@pytest.mark.parametrize("cache_type", ["copy", "symlink"])
def test_cache_on_another_filesystem(small, elsewhere, tmp_path, cache_type):
    # A shared cache on its own mount is a common set-up: downloads, the cache and the
    # workspace then span two filesystems, so no hard link can join them.
    repo, dataset = small
    cache_dir = str(elsewhere)
    repo.dvc("cache", "dir", "--local", cache_dir)
    repo.dvc("config", "--local", "cache.type", cache_type)
    script = write_script(tmp_path, "read.py", READ_FILES)
    expected = {f"data/images/{rel}": md5(data) for rel, data in dataset.files.items()}
    proc = stream_python(repo, script, *expected)
    assert last_json(proc) == expected
    for oid in expected.values():
        assert os.path.isfile(os.path.join(cache_dir, "files", "md5", oid[:2], oid[2:]))
    assert repo.dvc("status", "-q", check=False).returncode == 0
    assert not _leftovers(repo.root)
