"""Outputs written by DVC 2, as a DVC 3 user meets them in an old project.

A DVC 2 ``.dvc`` file records ``md5:`` with no ``hash:`` line, which DVC 3 reads as
``md5-dos2unix`` (a text file is hashed with its CRLFs read as LFs), and DVC 2 kept its objects at
the root of the cache and of the remote (``ab/cdef...``, not ``files/md5/ab/...``). No DVC 2 is
installed: the ``.dvc`` files, the ``.dir`` objects and the remote's objects are written here as
DVC 2 wrote them, on ``main`` and on a branch ``v2`` that changes, drops and adds files; the
branch ``v3`` is what a project that moved on to DVC 3 holds: ``dvc add`` of a changed DVC 2
output records it with ``hash: md5``, its objects under ``files/md5/``.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from dvc_stream.testing import DvcRepo, make_repo
from dvc_stream.testing.programs import last_json, md5, stream, write_script

from .conftest import READ_OR_ERROR, start_up

RAW, LABELS = "data/raw", "data/labels.csv"

MAIN = {
    "a.txt": b"first line\r\nsecond line\r\n",  # CRLF text: its md5-dos2unix is not its md5
    "b/c.bin": b"\x00\x01\r\n\x02" * 50,  # binary: hashed as it is
    "b/d.txt": b"unix text\n" * 20,
    "e.csv": b"id,value\r\n1,main\r\n",  # changed in v2
    "gone.txt": b"only on main\r\n",  # not in v2
}
V2 = {
    **{rel: data for rel, data in MAIN.items() if rel != "gone.txt"},
    "e.csv": b"id,value\r\n1,v2\r\n2,v2\r\n",
    "new.txt": b"only in v2\r\n",
}
V3 = {**V2, "e.csv": b"id,value\r\n1,v3\r\n"}  # by DVC 3, over v2
LABELS_MAIN = b"name,label\r\na.txt,cat\r\n"
LABELS_V2 = b"name,label\r\na.txt,dog\r\ne.csv,cat\r\n"
LABELS_V3 = b"name,label\r\na.txt,bird\r\n"


def legacy_md5(data: bytes) -> str:
    from dvc_data.hashfile.hash import fobj_md5

    return fobj_md5(io.BytesIO(data), name="md5-dos2unix")


def _write_version(repo: DvcRepo, moto_server, raw: dict[str, bytes], labels: bytes) -> None:
    """``data/raw`` and ``data/labels.csv`` as DVC 2 tracked and pushed them; committed."""
    bucket, prefix = repo.remote_url.removeprefix("s3://").split("/", 1)
    client = moto_server.client()

    def put(oid: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{oid[:2]}/{oid[2:]}", Body=body)

    entries = []
    for rel, data in sorted(raw.items()):
        entries.append({"md5": legacy_md5(data), "relpath": rel})
        put(entries[-1]["md5"], data)
    tree = json.dumps(entries, sort_keys=True).encode()  # NOTE: DVC 2's Tree.as_bytes
    dir_oid = md5(tree) + ".dir"
    put(dir_oid, tree)
    put(legacy_md5(labels), labels)
    data_dir = repo.root / "data"
    data_dir.mkdir(exist_ok=True)
    size = sum(map(len, raw.values()))
    (data_dir / "raw.dvc").write_text(
        f"outs:\n- md5: {dir_oid}\n  size: {size}\n  nfiles: {len(raw)}\n  path: raw\n"
    )
    (data_dir / "labels.csv.dvc").write_text(
        f"outs:\n- md5: {legacy_md5(labels)}\n  size: {len(labels)}\n  path: labels.csv\n"
    )
    (data_dir / ".gitignore").write_text("/raw\n/labels.csv\n")
    repo.git("add", "data")
    repo.commit("data tracked by DVC 2")


@pytest.fixture(scope="module")
def origin(tmp_path_factory, moto_server) -> DvcRepo:
    repo = make_repo(tmp_path_factory.mktemp("legacy") / "origin", moto_server)
    _write_version(repo, moto_server, MAIN, LABELS_MAIN)
    repo.git("checkout", "-q", "-b", "v2")
    _write_version(repo, moto_server, V2, LABELS_V2)
    repo.git("checkout", "-q", "-b", "v3")
    repo.dvc("pull", "-q")
    for path, data in ((f"{RAW}/e.csv", V3["e.csv"]), (LABELS, LABELS_V3)):
        (repo.root / path).unlink()
        (repo.root / path).write_bytes(data)
    repo.dvc("add", "-q", RAW, LABELS)
    assert "hash: md5" in (repo.root / "data/raw.dvc").read_text()
    repo.git("add", "data")
    repo.commit("v3, by DVC 3")
    repo.push()
    repo.git("checkout", "-q", "main")
    return repo


@pytest.fixture
def clone(origin, tmp_path) -> DvcRepo:
    """A fresh clone on ``main``: no data, an empty cache."""
    return origin.clone(tmp_path / "clone")


def files(raw: dict[str, bytes], labels: bytes) -> dict[str, bytes]:
    """Repo path -> bytes of every tracked file of a version."""
    return {**{f"{RAW}/{rel}": data for rel, data in raw.items()}, LABELS: labels}


MAIN_FILES, V2_FILES, V3_FILES = (
    files(MAIN, LABELS_MAIN),
    files(V2, LABELS_V2),
    files(V3, LABELS_V3),
)


def digests(version: dict[str, bytes], *paths: str) -> dict[str, str]:
    return {path: md5(version[path]) for path in paths or version}


def subset(version: dict[str, bytes], *paths: str) -> dict[str, bytes]:
    return {path: version[path] for path in paths}


def read(repo: DvcRepo, tmp_path: Path, *paths: str, options: tuple[str, ...] = ()):
    """md5 of each path read under ``dvc stream``, or the error; any warning fails the test."""
    script = write_script(tmp_path, "read.py", READ_OR_ERROR)
    proc = stream(repo, sys.executable, script, *paths, options=("--prefetch", "none", *options))
    assert "WARNING" not in proc.stderr, proc.stderr
    return last_json(proc)


def workspace(repo: DvcRepo) -> dict[str, bytes]:
    present = {f"{RAW}/{rel}": data for rel, data in repo.tracked_files(RAW).items()}
    if (repo.root / LABELS).exists():
        present[LABELS] = (repo.root / LABELS).read_bytes()
    return present


def dvcfiles(repo: DvcRepo) -> dict[str, str]:
    return {path: (repo.root / f"{path}.dvc").read_text() for path in (RAW, LABELS)}


def assert_unchanged(repo: DvcRepo) -> None:
    """``dvc status``, ``dvc data status`` and ``dvc diff`` see no change in the workspace."""
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout
    data = json.loads(repo.dvc("data", "status", "--granular", "--json").stdout)
    assert {k: v for k, v in data.items() if k in ("committed", "uncommitted")} == {}, data
    diff = json.loads(repo.dvc("diff", "--json").stdout or "{}")
    assert [diff.get(typ, []) for typ in ("added", "deleted", "modified")] == [[]] * 3, diff


def test_pull_reads_the_dvc2_outputs(clone):
    """The reference: DVC 3's own `dvc pull` of the outputs written here."""
    clone.dvc("pull", "-q")
    assert workspace(clone) == MAIN_FILES
    assert_unchanged(clone)


def test_stream_reads_every_file_as_pulled_and_a_second_run_fetches_nothing(clone, tmp_path):
    stats = tmp_path / "stats.json"
    assert read(clone, tmp_path, *MAIN_FILES, options=("--stats", str(stats))) == digests(
        MAIN_FILES
    )
    assert workspace(clone) == MAIN_FILES
    for data in MAIN_FILES.values():  # NOTE: where `dvc pull` caches a DVC 2 object
        oid = legacy_md5(data)
        assert (clone.root / ".dvc/cache" / oid[:2] / oid[2:]).read_bytes() == data
    assert read(clone, tmp_path, *MAIN_FILES, options=("--stats", str(stats))) == digests(
        MAIN_FILES
    )
    found = json.loads(stats.read_text())
    assert (found["demand_files"], found["cached_files"], found["failed_files"]) == (0, 0, 0)
    assert_unchanged(clone)


@pytest.mark.heavy
def test_a_partial_dvc2_output_is_unchanged_for_dvc(clone, tmp_path):
    present = (f"{RAW}/a.txt", f"{RAW}/b/c.bin")
    assert read(clone, tmp_path, *present, LABELS) == digests(MAIN_FILES, *present, LABELS)
    before = dvcfiles(clone)
    assert_unchanged(clone)
    for args in (
        ("add", RAW),
        ("commit", "-f"),
        ("commit", "-f", "data/raw.dvc"),
        ("checkout", RAW),
    ):
        proc = clone.dvc(*args, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
        assert dvcfiles(clone) == before, args
        assert workspace(clone) == subset(MAIN_FILES, *present, LABELS), args
    assert_unchanged(clone)
    clone.dvc("pull", "-q")
    assert workspace(clone) == MAIN_FILES
    assert_unchanged(clone)


@pytest.mark.heavy
def test_add_records_a_change_over_the_whole_dvc2_tree(clone, tmp_path):
    read(clone, tmp_path, f"{RAW}/a.txt", f"{RAW}/b/c.bin")
    edited, extra = b"edited\r\nby hand\r\n", b"a new file\r\n"
    (clone.root / RAW / "a.txt").unlink()
    (clone.root / RAW / "a.txt").write_bytes(edited)
    (clone.root / RAW / "extra.txt").write_bytes(extra)
    clone.dvc("add", "-q", RAW)
    out = yaml.safe_load((clone.root / "data/raw.dvc").read_text())["outs"][0]
    assert out["nfiles"] == len(MAIN) + 1
    assert clone.dvc("push", check=False).returncode == 0
    clone.git("add", "data/raw.dvc")
    clone.commit("edit the DVC 2 data")
    colleague = clone.clone()
    colleague.dvc("pull", "-q")
    expected = {**MAIN_FILES, f"{RAW}/a.txt": edited, f"{RAW}/extra.txt": extra}
    assert workspace(colleague) == expected
    assert_unchanged(colleague)


@pytest.mark.heavy
def test_switch_reads_the_checked_out_version(clone, tmp_path):
    changed, gone, same = f"{RAW}/e.csv", f"{RAW}/gone.txt", f"{RAW}/a.txt"
    assert read(clone, tmp_path, changed, gone, same, LABELS) == digests(
        MAIN_FILES, changed, gone, same, LABELS
    )
    clone.git("checkout", "-q", "v2")
    added = f"{RAW}/new.txt"
    got = read(clone, tmp_path, changed, gone, same, added, LABELS)
    assert got == {gone: "FileNotFoundError", **digests(V2_FILES, changed, same, added, LABELS)}
    assert workspace(clone) == subset(V2_FILES, changed, same, added, LABELS)
    assert_unchanged(clone)
    clone.git("checkout", "-q", "main")
    assert read(clone, tmp_path, changed, gone, LABELS) == digests(
        MAIN_FILES, changed, gone, LABELS
    )
    assert workspace(clone) == subset(MAIN_FILES, changed, gone, same, LABELS)
    assert_unchanged(clone)


def test_switch_between_a_dvc2_version_and_a_dvc3_one(clone, tmp_path):
    """Files placed for a DVC 2 version hold bytes of its cache (``md5-dos2unix``, at the cache's
    root), files of a DVC 3 one bytes of ``files/md5/``: either is DVC's cache, so a switch
    replaces them, never keeps them as unsaved changes."""
    paths = (f"{RAW}/e.csv", f"{RAW}/a.txt", f"{RAW}/b/c.bin", LABELS)
    assert read(clone, tmp_path, *paths) == digests(MAIN_FILES, *paths)
    clone.git("checkout", "-q", "v3")
    assert read(clone, tmp_path, *paths) == digests(V3_FILES, *paths)
    assert workspace(clone) == subset(V3_FILES, *paths)
    assert_unchanged(clone)
    clone.git("checkout", "-q", "main")
    assert read(clone, tmp_path, *paths) == digests(MAIN_FILES, *paths)
    assert workspace(clone) == subset(MAIN_FILES, *paths)
    assert_unchanged(clone)


def test_an_edit_kept_in_a_dvc2_output_is_hashed_at_one_start_up(clone, tmp_path, hashed):
    """An edited file of a DVC 2 output is kept at every start-up that checks the output, after
    asking ``files/md5`` (which holds DVC 3's objects) for it under DVC 3's md5: hashed for
    that at the first, then remembered while the file is unchanged, as DVC's own hash is."""
    clone.git("checkout", "-q", "v3")
    clone.dvc("fetch", "-q", LABELS)  # NOTE: a DVC 3 object: `files/md5` holds objects
    clone.git("checkout", "-q", "main")
    edited = f"{RAW}/a.txt"
    read(clone, tmp_path, edited)
    (clone.root / edited).unlink()
    (clone.root / edited).write_bytes(b"edited\r\nby hand\r\n")
    path = str((clone.root / edited).resolve())
    for rev in ("v2", "main"):
        clone.git("checkout", "-q", rev)
        hashed.clear()
        assert start_up(clone).kept == [(edited, True)], rev
        assert (clone.root / edited).read_bytes() == b"edited\r\nby hand\r\n"
        names = sorted(name for hashed_path, name in hashed if hashed_path == path)
        assert names == (["md5", "md5-dos2unix"] if rev == "v2" else []), rev


def test_migrating_a_partial_dvc2_output_is_refused(clone, tmp_path):
    """`dvc cache migrate --dvc-files` hashes DVC 2 outputs again with DVC 3's md5: an absent
    file has no bytes to hash (its DVC 2 hash was recorded as its md5, a tree no remote holds).
    NOTE: DVC itself breaks the `.dvc` file of a DVC 2 output that is absent, so labels is read."""
    read(clone, tmp_path, f"{RAW}/a.txt", f"{RAW}/b/c.bin", LABELS)
    before = (clone.root / "data/raw.dvc").read_text()
    proc = clone.dvc("cache", "migrate", "--dvc-files", check=False)
    assert proc.returncode != 0
    assert (
        f"ERROR: '{RAW}' is only partly in the workspace: its absent files cannot be hashed "
        "again with DVC 3's md5 (it was written by DVC 2); `dvc pull data/raw` first"
    ) in proc.stderr, proc.stderr
    assert (clone.root / "data/raw.dvc").read_text() == before
    clone.dvc("pull", "-q")
    clone.dvc("cache", "migrate", "--dvc-files")
    out = yaml.safe_load((clone.root / "data/raw.dvc").read_text())["outs"][0]
    assert (out["hash"], out["nfiles"]) == ("md5", len(MAIN))
    raw = (clone.root / ".dvc/cache/files/md5" / out["md5"][:2] / out["md5"][2:]).read_bytes()
    assert {e["relpath"]: e["md5"] for e in json.loads(raw)} == {
        rel: md5(data) for rel, data in MAIN.items()
    }


@pytest.mark.heavy
def test_a_stage_output_dvc2_locked(tmp_path, moto_server):
    """A stage whose output ``dvc.lock`` records as DVC 2 did (schema 2.0, no ``hash:``)."""
    prepared = {"x.txt": b"one\r\ntwo\r\n", "y.bin": b"\x00\x01\r\n"}
    script = b"print('prepare')\n"
    repo = make_repo(tmp_path / "origin", moto_server)
    bucket, prefix = repo.remote_url.removeprefix("s3://").split("/", 1)
    client = moto_server.client()
    entries = [{"md5": legacy_md5(data), "relpath": rel} for rel, data in sorted(prepared.items())]
    tree = json.dumps(entries, sort_keys=True).encode()
    objects = {md5(tree) + ".dir": tree, **{legacy_md5(d): d for d in prepared.values()}}
    for oid, body in objects.items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{oid[:2]}/{oid[2:]}", Body=body)
    (repo.root / "prepare.py").write_bytes(script)
    (repo.root / "dvc.yaml").write_text(
        "stages:\n  prepare:\n    cmd: python prepare.py\n    deps:\n    - prepare.py\n"
        "    outs:\n    - prepared\n"
    )
    (repo.root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: python prepare.py\n    deps:\n"
        f"    - path: prepare.py\n      md5: {md5(script)}\n      size: {len(script)}\n"
        f"    outs:\n    - path: prepared\n      md5: {md5(tree)}.dir\n"
        f"      size: {sum(map(len, prepared.values()))}\n      nfiles: {len(prepared)}\n"
    )
    (repo.root / ".gitignore").write_text("/prepared\n")
    repo.git("add", ".")
    repo.commit("a stage run by DVC 2")
    clone = repo.clone(tmp_path / "clone")
    lock = (clone.root / "dvc.lock").read_text()
    assert read(clone, tmp_path, "prepared/x.txt") == {"prepared/x.txt": md5(prepared["x.txt"])}
    assert_unchanged(clone)
    assert "Stage 'prepare' didn't change, skipping" in clone.dvc("repro").stdout
    assert (clone.root / "dvc.lock").read_text() == lock
    clone.dvc("pull", "-q")
    assert clone.tracked_files("prepared") == prepared
    assert_unchanged(clone)


WALK = r"""
import hashlib, json, os
out = {}
for top, _dirs, names in os.walk("data"):
    for name in names:
        path = os.path.join(top, name)
        with open(path, "rb") as fobj:
            out[path] = [os.stat(path).st_size, hashlib.md5(fobj.read()).hexdigest()]
print(json.dumps(out))
"""


def test_a_listed_dvc2_output_has_its_sizes_and_prefetches(clone, tmp_path):
    """A DVC 2 ``.dir`` holds no sizes: they come from the remote's root, where its objects are
    (a listing there must not take ``files/md5/`` for objects)."""
    script = write_script(tmp_path, "walk.py", WALK)
    stats = tmp_path / "stats.json"
    options = ("--prefetch", "listed", "--stats", str(stats))
    got = last_json(stream(clone, sys.executable, script, options=options))
    tracked = {path: found for path, found in got.items() if path in (LABELS, *MAIN_FILES)}
    assert tracked == {path: [len(data), md5(data)] for path, data in MAIN_FILES.items()}
    assert json.loads(stats.read_text())["failed_files"] == 0
    assert workspace(clone) == MAIN_FILES
    assert_unchanged(clone)
