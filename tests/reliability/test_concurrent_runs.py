"""Several runs at once on one workspace, or on one cache: every read returns the whole file, and
nothing empty or partial is placed in a workspace or left in the cache.

Two runs that read the same files both download them and both add them to the cache. A cache
object that another process is writing must never count as there. The runs read from a local
remote here: the race is between the processes that share the cache, whatever the remote, and a
local remote fetches many more objects per second than the moto server, so a race shows in every
run instead of now and then. The long stress test reads from the moto S3 remote.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import sys
import time

import pytest

from dvc_stream.testing import Dataset, DvcRepo
from dvc_stream.testing.repos import file_content

from .conftest import (
    READ,
    kill_group,
    last_json,
    md5,
    partial_files,
    spawn_stream,
    stream,
    temp_files,
    write_script,
)

SIZE = 700

# Reads its share of the files, checks the size ``os.stat`` gives and every byte, and prints a
# summary. ``hooks`` streams through ``install_hooks()`` in this process instead of `dvc stream`.
CHECK = r"""
import hashlib, json, os, random, sys
from concurrent.futures import ThreadPoolExecutor
expected_file, root, start, count, order, hooks = sys.argv[1:7]
expected = json.load(open(expected_file))
rels = sorted(expected)
mine = [rels[(int(start) + i) % len(rels)] for i in range(int(count))]
if order == "reverse":
    mine.reverse()
elif order == "shuffle":
    random.Random(start).shuffle(mine)

def check(rel):
    path = os.path.join(root, rel)
    size, digest = expected[rel]
    try:
        st_size = os.stat(path).st_size
        with open(path, "rb") as fobj:
            data = fobj.read()
    except OSError as exc:
        return f"{rel}: {type(exc).__name__}: {exc}"
    if st_size != size:
        return f"{rel}: os.stat says {st_size} bytes, not {size}"
    if len(data) != size or hashlib.md5(data).hexdigest() != digest:
        return f"{rel}: read {len(data)} bytes, not the {size} tracked"
    return None

if hooks == "hooks":
    import dvc_stream
    dvc_stream.install_hooks(root)
with ThreadPoolExecutor(8) as pool:
    errors = [error for error in pool.map(check, mine) if error]
if hooks == "hooks":
    dvc_stream.uninstall_hooks()
print(json.dumps({"read": len(mine), "errors": errors[:20], "nerrors": len(errors)}))
"""


def _local_remote(repo, path) -> None:
    """Make a directory the default remote, committed so that clones use it too."""
    repo.dvc("remote", "add", "-d", "local", str(path))
    repo.git("add", ".dvc/config")
    repo.commit("local remote")


def _expected(tmp_path, dataset, name: str = "expected") -> str:
    """repo-relative path -> [size, md5] of every file of ``dataset``, in a JSON file."""
    files = {f"{dataset.path}/{rel}": [len(d), md5(d)] for rel, d in dataset.files.items()}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(files))
    return str(path)


def _wait_all(procs) -> list[str]:
    """The stdout of each process, once all have ended; fails if any failed."""
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=1500)
            assert proc.returncode == 0, err[-3000:]
            outs.append(out)
    finally:
        for proc in procs:
            kill_group(proc)
    return outs


def _spawn_check(repo, script, expected, start, count, order, kind):
    """One broker reading its share: a `dvc stream` run, or a process with install_hooks()."""
    args = (expected, repo.root, str(start), str(count), order)
    if kind == "stream":
        return spawn_stream(repo, sys.executable, script, *args, "-", options=())
    import subprocess

    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args), "hooks"],
        cwd=repo.root,
        env=repo.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _cache_leftovers(cache_dir) -> list[str]:
    """Temporary files in a cache: what a half-done publish would leave."""
    return [str(p) for p in cache_dir.rglob("*.tmp")] if cache_dir.exists() else []


def _assert_whole(repo, dataset) -> None:
    assert partial_files(repo, dataset.path, dataset.files) == []
    assert temp_files(repo) == []
    assert _cache_leftovers(repo.root / ".dvc/cache") == []


# -- defect: two runs started together read empty files ---------------------------------------


@pytest.mark.heavy
def test_two_runs_reading_everything_read_whole_files(dvc_repo, tmp_path):
    _local_remote(dvc_repo, tmp_path / "remote")
    dataset = dvc_repo.make_dataset("data/raw", nfiles=3000, size=SIZE, depth=1)
    dvc_repo.wipe()
    script = write_script(tmp_path, "read.py", READ)
    paths = [f"data/raw/{rel}" for rel in sorted(dataset.files)]
    procs = [spawn_stream(dvc_repo, sys.executable, script, *paths, options=()) for _ in range(2)]
    for out in _wait_all(procs):
        got = json.loads(out.strip().splitlines()[-1])
        want = {p: ["ok", SIZE, md5(dataset.files[p.removeprefix("data/raw/")])] for p in paths}
        assert {p: r for p, r in got.items() if r != want[p]} == {}
    assert dvc_repo.tracked_files("data/raw") == dataset.files
    _assert_whole(dvc_repo, dataset)


# -- runs that open the remote together on a new site cache ------------------------------------

OPENERS = 4
ROUNDS = 16
START_DELAY = 1.5  # seconds: time for every child to make its Repo before they all open


def _open_remote(root: str, site_cache: str, start_at: float, open_remote) -> None:
    """In a forked child: a Repo on ``site_cache``, then the remote at ``start_at`` exactly, as
    two runs started together reach it."""
    from dvc.repo import Repo

    os.environ["DVC_SITE_CACHE_DIR"] = f"{site_cache}-{os.getpid()}"
    open_remote(Repo(root))  # NOTE: imports and first-use work done, so that the opens coincide
    os.environ["DVC_SITE_CACHE_DIR"] = site_cache
    repo = Repo(root)
    time.sleep(max(0.0, start_at - time.time() - 0.05))
    while time.time() < start_at:
        pass
    open_remote(repo)


def _failed_opens(repo, tmp_path, open_remote) -> int:
    """How many of ``OPENERS`` processes x ``ROUNDS`` fail to open the default remote."""
    fork = multiprocessing.get_context("fork")
    failures = 0
    for round_ in range(ROUNDS):
        site_cache = str(tmp_path / f"site-cache-{round_}")
        start_at = time.time() + START_DELAY
        args = (str(repo.root), site_cache, start_at, open_remote)
        children = [fork.Process(target=_open_remote, args=args) for _ in range(OPENERS)]
        for child in children:
            child.start()
        for child in children:
            child.join(120)
        failures += sum(child.exitcode != 0 for child in children)
    return failures


def _stream_opens_remote(repo) -> None:
    from dvc_stream.dvc_remotes import get_remote

    get_remote(repo, None, "stream")


@pytest.mark.heavy
def test_runs_opening_the_remote_together_on_a_new_site_cache_all_get_it(dvc_repo, tmp_path):
    """Defect: a second run started with the first failed "database is locked" (DVC's data
    index, set up by whichever process opens a remote first, refuses the others at once)."""
    assert _failed_opens(dvc_repo, tmp_path, _stream_opens_remote) == 0


# -- the states another process's write leaves a cache object in -------------------------------


def _empty(data: bytes) -> tuple[bytes, int]:
    return b"", 0o644  # DVC's reflink attempt: created at the object's path, not yet removed


def _truncated(data: bytes) -> tuple[bytes, int]:
    return b"", 0o444  # the same attempt, by root, on an object just finished: truncated


def _half(data: bytes) -> tuple[bytes, int]:
    return data[: len(data) // 2], 0o644  # a copy in place, half done


@pytest.mark.parametrize("state", [_empty, _truncated, _half], ids=["empty", "truncated", "half"])
def test_an_object_being_written_is_fetched_not_placed(dvc_repo, moto_server, tmp_path, state):
    dataset = dvc_repo.make_dataset("data/raw", nfiles=3, size=SIZE, depth=0)
    dvc_repo.wipe()
    rel = sorted(dataset.files)[0]
    oid = md5(dataset.files[rel])
    obj = dvc_repo.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]
    obj.parent.mkdir(parents=True)
    content, mode = state(dataset.files[rel])
    obj.write_bytes(content)
    obj.chmod(mode)
    script = write_script(tmp_path, "read.py", READ)
    path = f"data/raw/{rel}"
    got = last_json(stream(dvc_repo, sys.executable, script, path))
    assert got[path] == ["ok", SIZE, md5(dataset.files[rel])]
    assert (dvc_repo.root / path).read_bytes() == dataset.files[rel]
    assert obj.read_bytes() == dataset.files[rel]
    assert not obj.stat().st_mode & stat.S_IWUSR  # published read-only
    _assert_whole(dvc_repo, dataset)


# -- stress: four brokers, overlapping reads ----------------------------------------------------

BROKERS = [  # (kind, order)
    ("stream", "forward"),
    ("hooks", "forward"),
    ("stream", "shuffle"),
    ("hooks", "reverse"),
]


def _stress(repo, tmp_path, nfiles: int) -> None:
    dataset = repo.make_dataset("data/raw", nfiles=nfiles, size=SIZE, depth=2, fanout=4)
    repo.wipe()
    expected = _expected(tmp_path, dataset)
    script = write_script(tmp_path, "check.py", CHECK)
    # NOTE: each broker reads 3/4 of the files, from its own sixteenth on: the one ahead fetches,
    # the ones behind find its objects in the cache and catch up with it, where the races are.
    share, starts = nfiles * 3 // 4, [i * nfiles // 16 for i in range(len(BROKERS))]
    procs = [
        _spawn_check(repo, script, expected, start, share, order, kind)
        for start, (kind, order) in zip(starts, BROKERS, strict=True)
    ]
    for out in _wait_all(procs):
        result = json.loads(out.strip().splitlines()[-1])
        assert (result["read"], result["nerrors"]) == (share, 0), result["errors"]
    rels = sorted(dataset.files)
    read = {rels[(start + k) % nfiles] for start in starts for k in range(share)}
    assert set(repo.tracked_files("data/raw")) == read
    _assert_whole(repo, dataset)


@pytest.mark.heavy
def test_four_brokers_read_overlapping_files(dvc_repo, tmp_path):
    _local_remote(dvc_repo, tmp_path / "remote")
    _stress(dvc_repo, tmp_path, nfiles=1200)


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_four_brokers_read_overlapping_files_from_s3(dvc_repo, latency_proxy, tmp_path):
    latency_proxy.rtt_ms = 10
    dvc_repo.set_endpoint(latency_proxy.endpoint_url)
    _stress(dvc_repo, tmp_path, nfiles=4000)


# -- clones that share one cache ----------------------------------------------------------------


@pytest.mark.heavy
def test_two_clones_sharing_a_cache_read_whole_files(dvc_repo, tmp_path):
    _local_remote(dvc_repo, tmp_path / "remote")
    dataset = dvc_repo.make_dataset("data/raw", nfiles=2000, size=SIZE, depth=1)
    shared = tmp_path / "shared-cache"
    clones = [dvc_repo.clone(), dvc_repo.clone()]
    for clone in clones:
        clone.dvc("cache", "dir", "--local", str(shared))
    expected = _expected(tmp_path, dataset)
    script = write_script(tmp_path, "check.py", CHECK)
    n = dataset.nfiles
    procs = [
        _spawn_check(clone, script, expected, 0, n, order, "stream")
        for clone, order in zip(clones, ("forward", "forward"), strict=True)
    ]
    for out in _wait_all(procs):
        result = json.loads(out.strip().splitlines()[-1])
        assert (result["read"], result["nerrors"], result["errors"]) == (n, 0, [])
    for clone in clones:
        assert clone.tracked_files("data/raw") == dataset.files
        assert temp_files(clone) == []
    assert _cache_leftovers(shared) == []
    objects = [p for p in shared.rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert sorted(md5(p.read_bytes()) for p in objects) == sorted(
        p.parent.name + p.name for p in objects
    )
    assert len(objects) == len({md5(d) for d in dataset.files.values()})


# -- clones and worktrees at two versions on one cache --------------------------------------------


def _two_versions(repo) -> dict[str, Dataset]:
    """``data/raw`` on ``main``, and on the branch ``v2`` with every third file changed (another
    size too), every seventh dropped and 20 added; both pushed."""
    main = repo.make_dataset("data/raw", nfiles=900, size=SIZE, depth=1)
    repo.git("checkout", "-q", "-b", "v2")
    files = dict(main.files)
    for i, rel in enumerate(sorted(main.files)):
        if i % 7 == 3:
            del files[rel]
        elif i % 3 == 0:
            files[rel] = file_content(2, rel, SIZE + 50)
    files.update({f"d1/new{i:02d}.bin": file_content(2, f"new{i}", SIZE) for i in range(20)})
    for rel in main.files:
        (repo.root / "data/raw" / rel).unlink()  # NOTE: a link into the cache may be read-only
    for rel, data in files.items():
        (repo.root / "data/raw" / rel).write_bytes(data)
    repo.dvc("add", "-q", "data/raw")
    repo.git("add", "data/raw.dvc")
    repo.commit("v2 of data/raw")
    repo.push()
    repo.git("checkout", "-q", "main")
    return {"main": main, "v2": Dataset("data/raw", files)}


def _read_at_once(pairs, tmp_path) -> None:
    """``dvc stream`` in each repo at once, reading every file of its version (``pairs``:
    (repo, Dataset)): each read has that version's size and bytes, and so has the workspace."""
    script = write_script(tmp_path, "check.py", CHECK)
    procs = []
    for i, (repo, dataset) in enumerate(pairs):
        expected = _expected(tmp_path, dataset, f"expected-{i}")
        procs.append(_spawn_check(repo, script, expected, 0, dataset.nfiles, "forward", "stream"))
    for out, (repo, dataset) in zip(_wait_all(procs), pairs, strict=True):
        result = json.loads(out.strip().splitlines()[-1])
        assert (result["nerrors"], result["errors"]) == (0, []), repo
        assert repo.tracked_files("data/raw") == dataset.files
        assert temp_files(repo) == []


def _switch_and_read_again(repos, versions, tmp_path, checkout) -> None:
    """Both read their version at once; each switches to the other's; both read again."""
    first, second = repos
    _read_at_once([(first, versions["main"]), (second, versions["v2"])], tmp_path)
    checkout(first, "v2")
    checkout(second, "main")
    _read_at_once([(first, versions["v2"]), (second, versions["main"])], tmp_path)
    for repo in repos:
        assert "Data and pipelines are up to date." in repo.dvc("status").stdout


def _assert_whole_objects(cache_dir, versions) -> None:
    assert _cache_leftovers(cache_dir) == []
    objects = [p for p in cache_dir.rglob("*") if p.is_file() and not p.name.endswith(".dir")]
    assert sorted(md5(p.read_bytes()) for p in objects) == sorted(
        p.parent.name + p.name for p in objects
    )
    wanted = {md5(d) for dataset in versions.values() for d in dataset.files.values()}
    assert {p.parent.name + p.name for p in objects} == wanted


@pytest.mark.heavy
def test_two_clones_at_two_versions_sharing_a_cache(dvc_repo, tmp_path):
    _local_remote(dvc_repo, tmp_path / "remote")
    versions = _two_versions(dvc_repo)
    shared = tmp_path / "shared-cache"
    clones = [dvc_repo.clone(), dvc_repo.clone()]
    clones[1].git("checkout", "-q", "v2")
    for clone in clones:
        clone.dvc("cache", "dir", "--local", str(shared))
    _switch_and_read_again(
        clones, versions, tmp_path, lambda repo, rev: repo.git("checkout", "-q", rev)
    )
    _assert_whole_objects(shared, versions)


@pytest.mark.heavy
def test_two_worktrees_at_two_versions_on_one_cache(dvc_repo, tmp_path):
    """``git worktree add``: each worktree has its own ``.dvc/config.local``; the second's cache
    is pointed at the first's (``.dvc/cache``)."""
    _local_remote(dvc_repo, tmp_path / "remote")
    versions = _two_versions(dvc_repo)
    first = dvc_repo.clone()
    path = tmp_path / "worktree-v2"
    first.git("worktree", "add", "-q", str(path), "v2")
    second = DvcRepo(
        path, first.env, first.remote_url, first.endpoint_url, first.site_cache_dir, path
    )
    cache = first.root / ".dvc/cache"
    second.dvc("cache", "dir", "--local", str(cache))
    # NOTE: a branch checked out in one worktree cannot be checked out in another
    _switch_and_read_again(
        [first, second],
        versions,
        tmp_path,
        lambda repo, rev: repo.git("checkout", "-q", "--detach", rev),
    )
    _assert_whole_objects(cache, versions)
