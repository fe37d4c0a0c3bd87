"""Absent tracked data looks exactly like pulled data to every common way of looking at it."""

from __future__ import annotations

import hashlib

import pytest

from .conftest import last_json, run_python, stream_python, write_script

INSPECT = r"""
import glob
import hashlib
import json
import os
import pathlib
import sys

ROOTS = sys.argv[1:]


def md5(data):
    return hashlib.md5(data).hexdigest()


def error(func, *args):
    try:
        func(*args)
    except OSError as exc:
        return type(exc).__name__
    return "no error"


def scandir(path):
    out = {}
    with os.scandir(path) as entries:
        for e in entries:
            out[e.name] = [
                e.path, e.is_dir(), e.is_file(), e.is_symlink(),
                e.stat().st_size if e.is_file() else None,
            ]
    return out


out = {}
# -- metadata only: nothing is opened yet -------------------------------------------------------
out["root"] = sorted(n for n in os.listdir(".") if not n.startswith("."))
out["root_scandir"] = sorted(e.name for e in os.scandir() if not e.name.startswith("."))
walk = []
for root in ROOTS:
    for top, dirs, files in os.walk(root):
        walk.append([top, sorted(dirs), sorted(files)])
out["walk"] = sorted(walk)
dirs = [w[0] for w in walk]
files = sorted(os.path.join(w[0], f) for w in walk for f in w[2])
out["walk_bottom_up"] = sorted(
    [t, sorted(d), sorted(f)] for r in ROOTS for t, d, f in os.walk(r, topdown=False)
)
out["listdir"] = {d: sorted(os.listdir(d)) for d in dirs}
out["scandir"] = {d: scandir(d) for d in dirs}
out["glob"] = {r: sorted(glob.glob(r + "/**", recursive=True)) for r in ROOTS}
out["glob_bin"] = sorted(glob.glob("**/*.bin", recursive=True))
out["glob_star"] = {r: sorted(glob.glob(r + "/*/*")) for r in ROOTS}
out["iterdir"] = {
    d: sorted([str(p), p.is_dir()] for p in pathlib.Path(d).iterdir()) for d in dirs
}
out["pglob"] = {r: sorted(map(str, pathlib.Path(r).glob("*/*"))) for r in ROOTS}
out["rglob"] = {r: sorted(map(str, pathlib.Path(r).rglob("*"))) for r in ROOTS}
out["rglob_bin"] = sorted(map(str, pathlib.Path(".").rglob("*.bin")))
out["ospath_dirs"] = {
    d: [os.path.exists(d), os.path.isfile(d), os.path.isdir(d), os.path.islink(d)] for d in dirs
}
out["ospath_files"] = {
    f: [os.path.exists(f), os.path.isfile(f), os.path.isdir(f), os.path.getsize(f)]
    for f in files
}
out["path_dirs"] = {
    d: [pathlib.Path(d).exists(), pathlib.Path(d).is_file(), pathlib.Path(d).is_dir()]
    for d in dirs
}
out["path_files"] = {
    f: [
        pathlib.Path(f).exists(),
        pathlib.Path(f).is_file(),
        pathlib.Path(f).is_dir(),
        pathlib.Path(f).stat().st_size,
        os.stat(f).st_size,
        os.lstat(f).st_size,
        os.access(f, os.R_OK),
    ]
    for f in files
}
# -- paths that are neither tracked nor present -----------------------------------------------
missing = [ROOTS[0] + "/nope.bin", ROOTS[0] + "/nope/x.bin", "nothere.txt", "nodir/x"]
out["missing"] = {
    m: [
        error(open, m),
        error(open, m, "rb"),
        error(os.stat, m),
        error(os.listdir, m),
        error(os.scandir, m),
        error(pathlib.Path(m).read_bytes),
        os.path.exists(m),
        pathlib.Path(m).exists(),
    ]
    for m in missing
}
# -- reading: every file, half through pathlib, half through open() --------------------------
contents = {}
for i, f in enumerate(files):
    if i % 2:
        contents[f] = md5(pathlib.Path(f).read_bytes())
    else:
        with open(f, "rb") as fobj:
            contents[f] = md5(fobj.read())
out["contents"] = contents
out["sizes_after_read"] = {f: os.path.getsize(f) for f in files}
print(json.dumps(out))
"""

WRITES = r"""
import hashlib
import json
import os
import sys

base = sys.argv[1]  # a tracked directory whose files are all absent
sub = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
first, second = sub[0], sub[1]
out = {}
# "w": a new file in an absent tracked directory
with open(os.path.join(base, first, "new.txt"), "w") as fobj:
    fobj.write("fresh\n")
out["listing_after_w"] = sorted(os.listdir(os.path.join(base, first)))
out["new"] = open(os.path.join(base, first, "new.txt")).read()
# "a": append to a tracked file that is absent
files = [n for n in sorted(os.listdir(os.path.join(base, second))) if n.endswith(".bin")]
target = os.path.join(base, second, files[0])
size = os.path.getsize(target)
with open(target, "ab") as fobj:
    fobj.write(b"APPENDED")
data = open(target, "rb").read()
out["appended"] = [size, len(data), hashlib.md5(data).hexdigest(), data.endswith(b"APPENDED")]
# "w" over an absent tracked file replaces it
target2 = os.path.join(base, second, files[1])
with open(target2, "wb") as fobj:
    fobj.write(b"replaced")
out["replaced"] = open(target2, "rb").read().decode()
# "x" on an absent tracked file: it exists
try:
    open(os.path.join(base, second, files[2]), "x")
    out["x"] = "created"
except FileExistsError:
    out["x"] = "FileExistsError"
out["listing_second"] = sorted(os.listdir(os.path.join(base, second)))
print(json.dumps(out))
"""


@pytest.fixture
def tracked(dvc_repo, tmp_path):
    """A dataset nested 2 levels (40 files, one empty) and two single-file outputs; a pulled
    clone of it; and the original wiped back to a fresh-clone state."""
    dataset = dvc_repo.make_dataset(
        "data/images",
        nfiles=40,
        depth=2,
        fanout=2,
        sizes=lambda i: 0 if i == 7 else 50 + 37 * i,
        push=False,
    )
    model = dvc_repo.add_file("models/model.pkl", b"model weights" * 100, push=False)
    top = dvc_repo.add_file("top.bin", b"top level file\n")
    pulled = dvc_repo.clone()
    pulled.dvc("pull", "-q")
    dvc_repo.wipe()
    assert not (dvc_repo.root / "data" / "images").exists()
    assert not model.exists() and not top.exists()
    return dvc_repo, pulled, dataset


def test_everything_looks_pulled(tracked, tmp_path):
    repo, pulled, dataset = tracked
    script = write_script(tmp_path, "inspect.py", INSPECT)
    roots = ("data", "models", "top.bin")
    expected = last_json(run_python(pulled, script, *roots[:2]))
    got = last_json(stream_python(repo, script, *roots[:2]))
    # sanity of the reference itself
    # the dataset, the model, two .gitignore and two .dvc files
    assert len(expected["contents"]) == dataset.nfiles + 5
    assert expected["missing"]["nothere.txt"][0] == "FileNotFoundError"
    assert "top.bin" in expected["root"]
    for key in expected:
        assert got[key] == expected[key], key
    assert got == expected
    # the stream run really fetched the files: they are in the workspace now, byte-identical
    assert repo.tracked_files("data/images") == dataset.files


SINGLE = r"""
import hashlib, json, os, pathlib
out = {}
for f in ("top.bin", "models/model.pkl"):
    p = pathlib.Path(f)
    out[f] = [
        os.path.exists(f), os.path.isfile(f), os.path.isdir(f), os.path.getsize(f),
        p.exists(), p.is_file(), p.stat().st_size, f in [str(x) for x in p.parent.iterdir()],
        hashlib.md5(p.read_bytes()).hexdigest(),
        hashlib.md5(open(f, "rb").read()).hexdigest(),
    ]
out["models"] = [os.path.isdir("models"), sorted(os.listdir("models"))]
print(json.dumps(out))
"""


def test_single_file_outputs_writes_and_appends(tracked, tmp_path):
    repo, pulled, dataset = tracked
    # single-file outputs (one of them at the top of the repo)
    script = write_script(tmp_path, "single.py", SINGLE)
    expected = last_json(run_python(pulled, script))
    got = last_json(stream_python(repo, script))
    assert got == expected
    assert (repo.root / "top.bin").read_bytes() == b"top level file\n"
    # writes into absent tracked directories, appends to absent tracked files
    script = write_script(tmp_path, "writes.py", WRITES)
    base = "data/images/d0"
    expected = last_json(run_python(pulled, script, base))
    got = last_json(stream_python(repo, script, base))
    assert got == expected
    assert got["x"] == "FileExistsError"
    size, new_size, digest, ends = got["appended"]
    assert size > 0 and new_size == size + len(b"APPENDED") and ends
    # the appended file on disk is the real content plus the suffix
    rel = next(p for p in sorted(dataset.files) if p.startswith("d0/d1/"))
    on_disk = (repo.root / "data/images" / rel).read_bytes()
    assert on_disk == dataset.files[rel] + b"APPENDED"
    assert hashlib.md5(on_disk).hexdigest() == digest
