"""What each DVC command does with a directory ``dvc stream`` left partial (README's table)."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from .conftest import NFILES, md5, read_in_stream, stream

FIRST, SECOND = "data/raw/d0/f00000.bin", "data/raw/d1/f00001.bin"
RECORD = ".dvc/tmp/stream-workspace.json"


def _streamed(clone, tmp_path) -> bytes:
    """Two files of ``data/raw`` and ``data/labels.csv`` read under ``dvc stream``; the
    ``.dvc`` file as it was then."""
    read_in_stream(clone, tmp_path, FIRST, SECOND, "data/labels.csv")
    return _dvcfile(clone)


def _dvcfile(repo) -> bytes:
    return (repo.root / "data/raw.dvc").read_bytes()


def _tree(repo) -> dict[str, str]:
    """relpath -> md5 of the tree ``data/raw.dvc`` records, from the cache."""
    oid = yaml.safe_load(_dvcfile(repo))["outs"][0]["md5"]
    path = repo.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]
    return {entry["relpath"]: entry["md5"] for entry in json.loads(path.read_text())}


def _present(repo) -> dict[str, bytes]:
    return repo.tracked_files("data/raw")


def _write(repo, rel: str, data: bytes) -> None:
    path = repo.root / "data/raw" / rel
    if path.exists():
        path.unlink()  # NOTE: a link into the cache is read-only; DVC users replace it too
    path.write_bytes(data)


def _expected(origin, **changes: bytes) -> dict[str, bytes]:
    return {**origin.raw.files, **changes}


# -- dvc status, dvc data status, dvc diff ----------------------------------------------------


def _changes(repo) -> dict[str, list[str]]:
    """What ``dvc status``, ``dvc data status`` and ``dvc diff`` report as changed."""
    status = json.loads(repo.dvc("status", "--json").stdout)
    data = json.loads(repo.dvc("data", "status", "--granular", "--json").stdout)
    diff = json.loads(repo.dvc("diff", "--json").stdout)
    return {
        "status": [
            f"{stage}: {change}"
            for stage, changes in status.items()
            for change in map(json.dumps, changes)
        ],
        "data status": [
            f"{typ} {path}"
            for part in ("committed", "uncommitted")
            for typ, paths in data.get(part, {}).items()
            for path in paths
        ],
        "diff": [
            f"{typ} {item['path']}"
            for typ in ("added", "deleted", "modified")
            for item in diff.get(typ, [])
        ],
    }


def _about_raw(changes: dict[str, list[str]]) -> dict[str, list[str]]:
    return {cmd: [c for c in found if "data/raw" in c] for cmd, found in changes.items()}


def test_status_reports_no_change(clone, tmp_path):
    _streamed(clone, tmp_path)
    assert _about_raw(_changes(clone)) == {"status": [], "data status": [], "diff": []}


def test_status_reports_a_real_change(clone, tmp_path):
    _streamed(clone, tmp_path)
    _write(clone, "d0/f00000.bin", b"edited")
    _write(clone, "new.bin", b"new")
    changes = _about_raw(_changes(clone))
    assert changes["status"] == [
        'count: {"changed deps": {"data/raw": "modified"}}',
        'data/raw.dvc: {"changed outs": {"data/raw": "modified"}}',
    ]
    edits = ["added data/raw/new.bin", "modified data/raw/", "modified data/raw/d0/f00000.bin"]
    assert sorted(changes["data status"]) == edits
    assert sorted(changes["diff"]) == edits


def test_status_inside_dvc_stream_sees_every_output_whole(clone):
    proc = stream(clone, sys.executable, "-m", "dvc", "status")
    assert "Data and pipelines are up to date." in proc.stdout, proc.stdout


# -- dvc add, dvc commit --------------------------------------------------------------------------


def test_add_and_commit_record_the_tracked_tree(clone, tmp_path):
    before = _streamed(clone, tmp_path)
    for args in (
        ("add", "data/raw"),
        ("add", "data/raw/"),
        ("add", "--glob", "data/ra?"),
        ("add", "-f", "data/raw"),
        ("commit",),
        ("commit", "--force"),
        ("commit", "-f", "data/raw.dvc"),
        ("commit", "-f", "data/raw"),
    ):
        proc = clone.dvc(*args, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
        assert _dvcfile(clone) == before, args
    assert sorted(_present(clone)) == ["d0/f00000.bin", "d1/f00001.bin"]


def test_add_records_real_changes_over_the_tracked_tree(clone, origin, tmp_path):
    _streamed(clone, tmp_path)
    _write(clone, "d0/f00000.bin", b"edited")
    _write(clone, "new.bin", b"new")
    clone.dvc("add", "-q", "data/raw")
    tree = _tree(clone)
    assert len(tree) == NFILES + 1
    assert tree["d0/f00000.bin"] == md5(b"edited") and tree["new.bin"] == md5(b"new")
    assert tree["d1/f00001.bin"] == md5(origin.raw.files["d1/f00001.bin"])
    assert clone.dvc("status").stdout.count("data/raw.dvc") == 0
    # nothing lost: the remote plus this cache give the whole new version to a new clone
    clone.dvc("push", "-q")
    clone.git("commit", "-q", "-am", "edit data/raw")
    other = clone.clone()
    other.dvc("pull", "-q", "data/raw")
    assert _present(other) == _expected(origin, **{"d0/f00000.bin": b"edited", "new.bin": b"new"})
    recorded = _dvcfile(other)
    other.dvc("add", "-q", "data/raw")
    assert _dvcfile(other) == recorded  # size and nfiles as DVC records them with every file


def test_a_changed_size_is_recorded_as_dvc_records_it(clone, tmp_path):
    _streamed(clone, tmp_path)
    _write(clone, "d0/f00000.bin", b"a different length")
    clone.dvc("commit", "-q", "-f")
    recorded = _dvcfile(clone)
    clone.dvc("pull", "-q", "data/raw")
    clone.dvc("commit", "-q", "-f")
    assert _dvcfile(clone) == recorded


def test_commit_records_real_changes_over_the_tracked_tree(clone, origin, tmp_path):
    _streamed(clone, tmp_path)
    _write(clone, "d1/f00001.bin", b"edited")
    proc = clone.dvc("commit", "-f", check=False)
    assert proc.returncode == 0, proc.stderr
    tree = _tree(clone)
    assert len(tree) == NFILES and tree["d1/f00001.bin"] == md5(b"edited")
    clone.dvc("pull", "-q", "data/raw")
    assert _present(clone) == _expected(origin, **{"d1/f00001.bin": b"edited"})


def test_add_of_one_new_file_keeps_every_entry(clone, tmp_path):
    _streamed(clone, tmp_path)
    _write(clone, "new.bin", b"new")
    clone.dvc("add", "-q", "data/raw/new.bin")
    assert len(_tree(clone)) == NFILES + 1


def test_other_outputs_keep_dvcs_meaning(clone, tmp_path):
    """A directory dvc-stream never placed files into: deleting a file and adding it records
    the deletion, as always."""
    _streamed(clone, tmp_path)
    clone.make_dataset("data/other", nfiles=4, size=10, depth=0, seed=1, push=False)
    (clone.root / "data/other/f00000.bin").unlink()
    status = clone.dvc("status").stdout
    assert "deleted" in status or "modified:           data/other" in status, status
    clone.dvc("add", "-q", "data/other")
    assert yaml.safe_load((clone.root / "data/other.dvc").read_text())["outs"][0]["nfiles"] == 3


def test_notebook_hooks_leave_a_partial_output_too(clone):
    code = (
        "import dvc_stream\n"
        "dvc_stream.install_hooks('.', prefetch='none')\n"
        f"open('{FIRST}', 'rb').read()\n"
        "dvc_stream.uninstall_hooks()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=clone.root, env=clone.env, check=True)
    before = _dvcfile(clone)
    clone.dvc("add", "-q", "data/raw")
    assert _dvcfile(clone) == before


# -- dvc checkout -------------------------------------------------------------------------------


def test_checkout_keeps_a_partial_directory(clone, origin, tmp_path):
    before = _streamed(clone, tmp_path)
    proc = clone.dvc("checkout", "data/raw", check=False)
    assert proc.returncode == 0, proc.stderr
    assert _present(clone) == {k: origin.raw.files[k] for k in ("d0/f00000.bin", "d1/f00001.bin")}
    assert _dvcfile(clone) == before
    assert sorted(p.name for p in (clone.root / "data/raw").iterdir()) == ["d0", "d1"]


def test_checkout_adds_what_the_cache_has(clone, origin, tmp_path):
    _streamed(clone, tmp_path)
    clone.dvc("fetch", "-q", "data/raw/d2")
    clone.dvc("checkout", "-q", "data/raw")
    expected = {k: v for k, v in origin.raw.files.items() if k.startswith("d2/")}
    expected.update({k: origin.raw.files[k] for k in ("d0/f00000.bin", "d1/f00001.bin")})
    assert _present(clone) == expected
    assert "data/raw" in json.loads((clone.root / RECORD).read_text())["outputs"]


def test_checkout_keeps_a_users_edit_unless_forced(clone, origin, tmp_path):
    _streamed(clone, tmp_path)
    _write(clone, "d0/f00000.bin", b"edited")
    proc = clone.dvc("checkout", "data/raw", check=False)
    assert proc.returncode != 0
    assert "Can't remove the following unsaved files" in proc.stderr, proc.stderr
    assert _present(clone)["d0/f00000.bin"] == b"edited"
    clone.dvc("checkout", "-q", "--force", "data/raw")
    assert _present(clone)["d0/f00000.bin"] == origin.raw.files["d0/f00000.bin"]
    assert len(_present(clone)) == 2


# -- dvc pull, fetch, push, gc ---------------------------------------------------------------


def test_pull_completes_and_releases_the_output(clone, origin, tmp_path):
    before = _streamed(clone, tmp_path)
    clone.dvc("pull", "-q")
    assert _present(clone) == origin.raw.files
    assert _dvcfile(clone) == before
    assert not (clone.root / RECORD).exists()
    (clone.root / "data/raw/d2/f00002.bin").unlink()  # whole again: DVC's meaning is back
    assert "modified:           data/raw" in clone.dvc("status").stdout


def test_pull_restores_a_claimed_output_removed_with_the_cache(clone, origin, tmp_path):
    # NOTE: the record still claims data/raw, which is gone with every object: checkout must
    # create the whole output (it used to fail with a KeyError, exit 255).
    before = _streamed(clone, tmp_path)
    clone.wipe()
    assert (clone.root / RECORD).exists()
    clone.dvc("pull", "-q")
    assert _present(clone) == origin.raw.files
    assert _dvcfile(clone) == before
    assert not (clone.root / RECORD).exists()


def test_push_and_gc_lose_nothing(clone, origin, tmp_path):
    _streamed(clone, tmp_path)
    assert clone.dvc("push", check=False).returncode == 0
    clone.dvc("gc", "-w", "-f", "-q")
    assert _present(clone) == {k: origin.raw.files[k] for k in ("d0/f00000.bin", "d1/f00001.bin")}
    assert clone.dvc("status").stdout.count("data/raw") == 0
    clone.dvc("pull", "-q", "data/raw")
    assert _present(clone) == origin.raw.files


# -- the end-of-run summary -------------------------------------------------------------------


def test_summary_says_how_to_complete(clone, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    proc = stream(clone, sys.executable, "-c", f"open('{SECOND}', 'rb').read()")
    hints = [line for line in proc.stderr.splitlines() if "incomplete" in line]
    assert len(hints) == 1, proc.stderr
    hint = hints[0]
    assert hint.startswith(f"'data/raw' is incomplete ({NFILES - 2} of {NFILES} files absent)")
    assert "`dvc pull data/raw` completes it." in hint
    assert "`dvc add` and `dvc commit` record them, `dvc checkout` leaves them absent" in hint
    assert "runs only under `dvc stream`" in hint


def test_summary_offers_checkout_when_the_cache_has_everything(clone, origin, tmp_path):
    read_in_stream(clone, tmp_path, FIRST)
    clone.dvc("fetch", "-q", "data/raw")
    proc = stream(clone, sys.executable, "-c", f"open('{SECOND}', 'rb').read()")
    assert "`dvc checkout data/raw` completes it from the cache" in proc.stderr, proc.stderr
    clone.dvc("checkout", "-q", "data/raw")
    assert _present(clone) == origin.raw.files
    assert not (clone.root / RECORD).exists()
