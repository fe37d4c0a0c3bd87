"""A version switch (``git checkout`` without ``dvc checkout``) between two streamed runs: the
next run reads the checked-out version, never the files placed for the previous one."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dvc_stream.testing.programs import (
    last_json,
    md5,
    spawn_stream,
    stream,
    wait_for,
    write_script,
)
from dvc_stream.testing.repos import DvcRepo

from .conftest import READ_OR_ERROR, start_up

BLOBS = 6
RAW = "data/raw"
LABELS = "data/labels.csv"
CHANGED = f"{RAW}/blob_0001.bin"  # changed in v2
DROPPED = f"{RAW}/blob_0002.bin"  # not in v2
ADDED = f"{RAW}/blob_0100.bin"  # only in v2
SAME = f"{RAW}/blob_0003.bin"  # the same in both


def blob(version: str, name: str) -> bytes:
    return f"{version}:{name}\n".encode() * 64


def _write(repo, version: str, names: list[str]) -> dict[str, bytes]:
    files = {f"{RAW}/{name}": blob(version, name) for name in names}
    files[LABELS] = f"id,label\n1,{version}\n".encode()
    for path, data in files.items():
        target = repo.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


def _track(repo, message: str) -> None:
    repo.dvc("add", "-q", RAW, LABELS)
    repo.git("add", f"{RAW}.dvc", f"{LABELS}.dvc", "data/.gitignore")
    repo.commit(message)
    repo.push()


@pytest.fixture(scope="module")
def versions(tmp_path_factory, moto_server):
    """An origin whose ``main`` and ``v2`` differ in CHANGED, DROPPED, ADDED and LABELS, pushed;
    returns (origin, main's files, v2's files)."""
    from dvc_stream.testing import make_repo

    origin = make_repo(tmp_path_factory.mktemp("versions") / "origin", moto_server)
    names = [f"blob_{i:04d}.bin" for i in range(BLOBS)]
    main = _write(origin, "main", names)
    _track(origin, "main data")
    origin.git("checkout", "-q", "-b", "v2")
    (origin.root / DROPPED).unlink()
    v2 = {**main, **_write(origin, "v2", ["blob_0001.bin", "blob_0100.bin"])}
    del v2[DROPPED]
    _track(origin, "v2 data")
    origin.git("checkout", "-q", "main")
    return origin, main, v2


@dataclass
class Clone:
    repo: DvcRepo
    main: dict[str, bytes]  # path -> bytes on main
    v2: dict[str, bytes]
    script: Path  # READ

    def read(self, *paths: str) -> dict[str, str]:
        return last_json(stream(self.repo, sys.executable, self.script, *paths))

    def checkout(self, rev: str) -> None:
        self.repo.git("checkout", "-q", rev)


@pytest.fixture
def clone(versions, tmp_path, monkeypatch) -> Clone:
    """A fresh clone of the origin on ``main``, nothing pulled."""
    return _fresh_clone(*versions, tmp_path, monkeypatch)


def _fresh_clone(origin, main, v2, tmp_path, monkeypatch) -> Clone:
    repo = origin.clone(tmp_path / "clone")
    for name, value in repo.env.items():
        monkeypatch.setenv(name, value)
    return Clone(repo, main, v2, write_script(tmp_path, "read.py", READ_OR_ERROR))


def digests(files: dict[str, bytes], *paths: str) -> dict[str, str]:
    return {p: md5(files[p]) for p in paths}


def record(repo) -> dict[str, str]:
    path = repo.root / ".dvc/tmp/stream-workspace.json"
    if not path.exists():
        return {}
    return {k: v["oid"] for k, v in json.loads(path.read_text())["outputs"].items()}


def recorded_tree(repo) -> dict[str, str]:
    """relpath -> md5 of the tree ``data/raw.dvc`` records (its ``.dir`` is in the cache)."""
    oid = _oid(repo, RAW)
    path = repo.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]
    return {entry["relpath"]: entry["md5"] for entry in json.loads(path.read_text())}


def tree_of(files: dict[str, bytes]) -> dict[str, str]:
    """relpath -> md5 of the files of ``data/raw`` among ``files`` (path -> bytes)."""
    prefix = f"{RAW}/"
    return {p.removeprefix(prefix): md5(d) for p, d in files.items() if p.startswith(prefix)}


def warnings(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("WARNING:")]


def test_switch_reads_the_checked_out_version(clone):
    """Defect 3: the second run read main's bytes for both files after `git checkout v2`."""
    repo = clone.repo
    assert clone.read(CHANGED, LABELS) == digests(clone.main, CHANGED, LABELS)
    clone.checkout("v2")
    assert clone.read(CHANGED, LABELS) == digests(clone.v2, CHANGED, LABELS)
    assert (repo.root / CHANGED).read_bytes() == clone.v2[CHANGED]
    assert (repo.root / LABELS).read_bytes() == clone.v2[LABELS]
    clone.checkout("main")
    assert clone.read(CHANGED, LABELS, SAME) == digests(clone.main, CHANGED, LABELS, SAME)
    assert not list((repo.root / ".dvc/tmp/stream-reconcile").iterdir())


def test_unsaved_change_is_kept_with_one_warning(clone):
    repo = clone.repo
    clone.read(CHANGED, SAME)
    edited = b"my own labels\n"
    (repo.root / CHANGED).write_bytes(edited)
    clone.checkout("v2")
    proc = stream(repo, sys.executable, clone.script, CHANGED, SAME, LABELS)
    assert last_json(proc) == {CHANGED: md5(edited), **digests(clone.v2, SAME, LABELS)}
    assert warnings(proc) == [
        f"WARNING: '{CHANGED}' has unsaved changes (its content is in no cache): kept instead "
        "of the checked-out version's file; delete it to read that version"
    ]
    again = stream(repo, sys.executable, clone.script, CHANGED)
    assert last_json(again) == {CHANGED: md5(edited)}
    assert warnings(again) == []  # reconciled once, not at every run


def test_an_edit_kept_is_not_hashed_for_an_empty_other_cache(clone, hashed):
    """DVC 2 never wrote to this project: the cache's root holds no objects, so an edit is not
    hashed with DVC 2's md5 to look for it there."""
    repo = clone.repo
    clone.read(CHANGED)
    (repo.root / CHANGED).unlink()
    (repo.root / CHANGED).write_bytes(b"my own blob\n")
    clone.checkout("v2")
    assert start_up(repo).kept == [(CHANGED, True)]
    path = str((repo.root / CHANGED).resolve())
    assert [name for hashed_path, name in hashed if hashed_path == path] == ["md5"]


def test_file_the_new_version_lacks_is_removed(clone):
    repo = clone.repo
    clone.read(DROPPED, SAME)
    clone.checkout("v2")
    proc = stream(repo, sys.executable, clone.script, DROPPED, SAME, ADDED)
    assert last_json(proc) == {DROPPED: "FileNotFoundError", **digests(clone.v2, SAME, ADDED)}
    assert warnings(proc) == []
    assert not (repo.root / DROPPED).exists()
    assert (repo.root / SAME).read_bytes() == clone.v2[SAME]
    v2_oid = _oid(repo, RAW)
    assert record(repo)[RAW] == v2_oid


def test_pulled_output_is_reconciled_from_the_cache(clone):
    """Present but never in the record: a full `dvc pull` on main, `git checkout v2`; the
    objects v2 needs are in the cache (`dvc fetch`), so the files are replaced in place."""
    repo = clone.repo
    repo.dvc("pull", "-q")
    clone.checkout("v2")
    repo.dvc("fetch", "-q")
    proc = stream(repo, sys.executable, "-c", "pass")
    assert proc.returncode == 0, proc.stderr
    present = {p.removeprefix(f"{RAW}/"): clone.v2[p] for p in clone.v2 if RAW in p and p != ADDED}
    assert repo.tracked_files(RAW) == present  # ADDED stays absent: streamed on demand
    assert (repo.root / LABELS).read_bytes() == clone.v2[LABELS]
    # data/raw lost DROPPED and lacks ADDED: partial, so in the record; labels.csv is complete
    assert record(repo) == {RAW: _oid(repo, RAW)}


def test_pulled_output_without_the_new_objects(clone):
    """The same without `dvc fetch`: the stale files are removed and v2's streamed."""
    repo = clone.repo
    repo.dvc("pull", "-q")
    clone.checkout("v2")
    paths = (CHANGED, DROPPED, SAME, ADDED, LABELS)
    got = clone.read(*paths)
    assert got == {DROPPED: "FileNotFoundError", **digests(clone.v2, CHANGED, SAME, ADDED, LABELS)}
    assert record(repo)[RAW] == _oid(repo, RAW)


def test_dvc_checkout_between_runs_is_noticed(clone):
    """After a run on v2, `dvc checkout` on main puts main's files back; back on v2 (no
    `dvc checkout`), the version the record holds is v2 again, yet the files are main's."""
    repo = clone.repo
    repo.dvc("pull", "-q")
    clone.checkout("v2")
    assert clone.read(CHANGED, LABELS) == digests(clone.v2, CHANGED, LABELS)
    clone.checkout("main")
    repo.dvc("checkout", "-q", "--force")
    assert (repo.root / CHANGED).read_bytes() == clone.main[CHANGED]
    clone.checkout("v2")
    assert clone.read(CHANGED, LABELS) == digests(clone.v2, CHANGED, LABELS)


def test_two_runs_starting_together(clone):
    repo = clone.repo
    clone.read(CHANGED, SAME, LABELS, f"{RAW}/blob_0004.bin")
    edited = b"edited by hand\n"
    (repo.root / SAME).write_bytes(edited)
    clone.checkout("v2")
    args = (sys.executable, clone.script, CHANGED, SAME, LABELS)
    procs = [spawn_stream(repo, *args) for _ in "ab"]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    expected = {SAME: md5(edited), **digests(clone.v2, CHANGED, LABELS)}
    assert [json.loads(out.splitlines()[-1]) for out, _err in results] == [expected] * 2
    named = [line for _out, err in results for line in err.splitlines() if "WARNING:" in line]
    assert len(named) == 1, results  # one run reconciled, the other found it done
    assert (repo.root / f"{RAW}/blob_0004.bin").read_bytes() == clone.v2[f"{RAW}/blob_0004.bin"]


def test_install_hooks_reconciles(clone, tmp_path):
    repo = clone.repo
    clone.read(CHANGED, LABELS)
    clone.checkout("v2")
    notebook = write_script(
        tmp_path,
        "notebook.py",
        "import hashlib, json, dvc_stream\n"
        "dvc_stream.install_hooks('.', prefetch='none')\n"
        f"paths = [{CHANGED!r}, {LABELS!r}]\n"
        "print(json.dumps({p: hashlib.md5(open(p, 'rb').read()).hexdigest() for p in paths}))\n"
        "dvc_stream.uninstall_hooks()\n",
    )
    proc = subprocess.run(
        [sys.executable, notebook], cwd=repo.root, env=repo.env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc) == digests(clone.v2, CHANGED, LABELS)


def test_outputs_leave_the_record(clone):
    """A placed single file leaves it at the next start (complete); a directory stays while
    partial; an output no longer tracked leaves it."""
    repo = clone.repo
    clone.read(CHANGED, LABELS)
    assert set(record(repo)) == {RAW, LABELS}
    clone.read(SAME)
    assert set(record(repo)) == {RAW}
    repo.git("rm", "-q", f"{RAW}.dvc")
    repo.commit("stop tracking data/raw")
    proc = stream(repo, sys.executable, "-c", "pass")
    assert proc.returncode == 0, proc.stderr
    assert record(repo) == {}
    assert (repo.root / CHANGED).read_bytes() == clone.main[CHANGED]  # left as it is


def _oid(repo, path: str) -> str:
    import yaml

    return yaml.safe_load((repo.root / f"{path}.dvc").read_text())["outs"][0]["md5"]


WAIT_THEN_READ = r"""
import hashlib, json, os, sys, time
flag, first, second = sys.argv[1:]
out = {first: hashlib.md5(open(first, "rb").read()).hexdigest()}
while not os.path.exists(flag):
    time.sleep(0.05)
out[second] = hashlib.md5(open(second, "rb").read()).hexdigest()
print(json.dumps(out))
"""


def test_run_across_a_switch_hands_its_version_back(clone, tmp_path):
    """A run on main goes on across `git checkout v2` and another run's start, and places a
    main file after that; when it ends, the next run still reconciles that file."""
    repo = clone.repo
    flag = tmp_path / "go"
    script = write_script(tmp_path, "wait.py", WAIT_THEN_READ)
    old = spawn_stream(repo, sys.executable, script, flag, SAME, CHANGED)
    wait_for(lambda: (repo.root / SAME).exists(), what="the first read", proc=old)
    clone.checkout("v2")
    assert clone.read(LABELS) == digests(clone.v2, LABELS)  # reconciles: the record says v2
    flag.touch()
    out, err = old.communicate(timeout=300)
    assert old.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == digests(clone.main, SAME, CHANGED)
    assert (repo.root / CHANGED).read_bytes() == clone.main[CHANGED]  # placed for main
    assert clone.read(CHANGED) == digests(clone.v2, CHANGED)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory, moto_server):
    """An origin where ``data/x`` is a file on ``main`` and a directory on ``v2``, and ``data/y``
    the reverse, pushed; returns (origin, main's files, v2's files)."""
    from dvc_stream.testing import make_repo

    origin = make_repo(tmp_path_factory.mktemp("kinds") / "origin", moto_server)
    main = {"data/x": b"x, a file on main\n", "data/y/a": b"y/a on main\n", "data/y/b": b"y/b\n"}
    v2 = {"data/x/a": b"x/a on v2\n", "data/x/b": b"x/b on v2\n", "data/y": b"y, a file on v2\n"}
    for version, files in (("main", main), ("v2", v2)):
        if version == "v2":
            origin.git("checkout", "-q", "-b", "v2")
            for name in ("x", "y"):
                origin.dvc("remove", "-q", f"data/{name}.dvc")
                subprocess.run(["rm", "-rf", origin.root / "data" / name], check=True)
        for path, data in files.items():
            (origin.root / path).parent.mkdir(parents=True, exist_ok=True)
            (origin.root / path).write_bytes(data)
        origin.dvc("add", "-q", "data/x", "data/y")
        origin.git("add", "-A")
        origin.commit(f"{version} data")
        origin.push()
    origin.git("checkout", "-q", "main")
    return origin, main, v2


@pytest.fixture
def kinds_clone(kinds, tmp_path, monkeypatch) -> Clone:
    return _fresh_clone(*kinds, tmp_path, monkeypatch)


def test_an_output_that_changes_kind_reads_the_checked_out_one(kinds_clone):
    """A file that was a directory in the version its files were placed for (or the reverse):
    the directory's files, in the cache, go with the directory, and the file is streamed."""
    clone, repo, main, v2 = kinds_clone, kinds_clone.repo, kinds_clone.main, kinds_clone.v2
    assert clone.read(*main) == digests(main, *main)
    for version, files in (("v2", v2), ("main", main)):
        clone.checkout(version)
        assert clone.read(*files) == digests(files, *files), version
        assert {p: (repo.root / p).read_bytes() for p in files} == files


def test_dvc_checkout_across_a_change_of_kind(kinds_clone):
    """Plain `dvc checkout` after a switch, with the other kind's files placed: as DVC does for
    a pulled workspace, the cached files of the old kind go; the partial directory keeps the
    files the cache lacks absent."""
    clone, repo, main, v2 = kinds_clone, kinds_clone.repo, kinds_clone.main, kinds_clone.v2
    assert clone.read("data/x", "data/y/a") == digests(main, "data/x", "data/y/a")
    clone.checkout("v2")
    assert clone.read("data/x/a", "data/y") == digests(v2, "data/x/a", "data/y")
    clone.checkout("main")
    repo.dvc("checkout", "-q")
    assert (repo.root / "data/x").read_bytes() == main["data/x"]
    assert repo.tracked_files("data/y") == {"a": main["data/y/a"]}  # b: never fetched, absent
    assert repo.dvc("status", "-q", check=False).returncode == 0
    assert clone.read("data/y/b") == digests(main, "data/y/b")


def test_add_after_a_switch_without_a_run_keeps_the_new_versions_absent_files(clone):
    """Found by the long stateful run: after `git checkout v2` and no run since, `dvc add` of
    the partial output recorded v2's files that were never placed as deleted."""
    repo = clone.repo
    clone.read(SAME)
    clone.checkout("v2")
    edited = b"edited after the switch\n"
    (repo.root / SAME).unlink()
    (repo.root / SAME).write_bytes(edited)
    repo.dvc("add", "-q", RAW)
    assert recorded_tree(repo) == tree_of({**clone.v2, SAME: edited})


@pytest.fixture(scope="module")
def grown(tmp_path_factory, moto_server):
    """An origin whose ``v2`` only adds ADDED to ``main``'s ``data/raw`` (a growing dataset)."""
    from dvc_stream.testing import make_repo

    origin = make_repo(tmp_path_factory.mktemp("grown") / "origin", moto_server)
    main = _write(origin, "main", [f"blob_{i:04d}.bin" for i in range(BLOBS)])
    _track(origin, "main data")
    origin.git("checkout", "-q", "-b", "v2")
    v2 = {**main, **_write(origin, "v2", ["blob_0100.bin"])}
    (origin.root / LABELS).write_bytes(main[LABELS])
    v2[LABELS] = main[LABELS]
    _track(origin, "v2 data")
    origin.git("checkout", "-q", "main")
    return origin, main, v2


def test_a_pulled_output_switched_to_a_grown_version_keeps_its_new_files(
    grown, tmp_path, monkeypatch
):
    """`dvc pull` on main, `git checkout v2` (which only adds ADDED), a run that reads
    another file: `dvc add` must record ADDED, which the run showed and never placed."""
    clone = _fresh_clone(*grown, tmp_path, monkeypatch)
    repo = clone.repo
    repo.dvc("pull", "-q")
    clone.checkout("v2")
    proc = stream(repo, sys.executable, clone.script, SAME)
    assert last_json(proc) == digests(clone.v2, SAME)
    # the run placed nothing, and still says what it left incomplete
    total = sum(path.startswith(f"{RAW}/") for path in clone.v2)
    assert f"'{RAW}' is incomplete (1 of {total} files absent)" in proc.stderr
    edited = b"edited after the switch\n"
    (repo.root / SAME).unlink()
    (repo.root / SAME).write_bytes(edited)
    repo.dvc("add", "-q", RAW)
    assert recorded_tree(repo) == tree_of({**clone.v2, SAME: edited})


def test_a_file_deleted_from_a_pulled_output_is_a_deletion(grown, tmp_path, monkeypatch):
    """The rule above stops at files that were here once: a file deleted from a pulled output
    is recorded as deleted by `dvc add`, as DVC records it, after a run as without one."""
    clone = _fresh_clone(*grown, tmp_path, monkeypatch)
    repo = clone.repo
    clone.checkout("v2")
    repo.dvc("pull", "-q")
    (repo.root / SAME).unlink()
    assert clone.read(ADDED) == digests(clone.v2, ADDED)
    repo.dvc("add", "-q", RAW)
    assert recorded_tree(repo) == tree_of({p: d for p, d in clone.v2.items() if p != SAME})


def test_a_granular_pull_leaves_the_rest_not_fetched(clone):
    """`dvc pull` of one file of the output, a run that reads only that one (it places
    nothing): `dvc add` keeps every file the pull did not bring, never in the workspace."""
    repo = clone.repo
    repo.dvc("pull", "-q", SAME)
    assert clone.read(SAME) == digests(clone.main, SAME)
    (repo.root / "data/raw/new.bin").write_bytes(b"new\n")
    repo.dvc("add", "-q", RAW)
    assert recorded_tree(repo) == tree_of({**clone.main, f"{RAW}/new.bin": b"new\n"})
