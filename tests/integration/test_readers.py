"""Which third-party readers see absent tracked files under ``dvc stream``'s hooks.

Every reader opens its own file of a tracked directory, in a clone that pulled nothing, under
``dvc stream --prefetch none`` (so nothing arrives unless the reader itself asks for it); the same
script on a pulled clone is the reference. Readers that open files from Python (``open``,
``io.FileIO``, ``os.open``) work; readers that open them from C or C++ do not, and need
``--mount``, under which every reader works. The README's compatibility table is this file's
``EXPECTED``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from .conftest import pulled_clone, run, stream

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
Image = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.slow

COMPAT = "data/compat"

# reader -> where it works: "hooks", or "mount" (C/C++ opens the file: the hooks cannot see it)
EXPECTED = {
    "pandas.read_csv": "hooks",
    "numpy.load (.npy)": "hooks",
    "numpy.load (.npz)": "hooks",
    "numpy.load (mmap_mode='r')": "hooks",
    "numpy.fromfile": "hooks",
    "PIL.Image.open": "hooks",
    "json.load": "hooks",
    "pickle.load": "hooks",
    "tarfile.open": "hooks",
    "zipfile.ZipFile": "hooks",
    "torch.load": "hooks",
    "h5py.File(path)": "mount",
    "h5py.File(open(path, 'rb'))": "hooks",
    "cv2.imread": "mount",
    "cv2.imdecode(numpy.fromfile(path))": "hooks",
    "sqlite3.connect (read-only)": "hooks",
    "sqlite3.connect": "hooks",
    "tf.io.read_file": "mount",
}

READ_ALL = r"""
import hashlib, json, os, sys

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

D = "data/compat/"


def digest(data):
    return hashlib.md5(bytes(data)).hexdigest()


def pandas_csv():
    import pandas as pd
    df = pd.read_csv(D + "table.csv")
    return [list(df.shape), float(df["value"].sum())]


def npy():
    import numpy as np
    return float(np.load(D + "array.npy").sum())


def npz():
    import numpy as np
    with np.load(D + "arrays.npz") as z:
        return {k: float(z[k].sum()) for k in sorted(z.files)}


def npy_mmap():
    import numpy as np
    return float(np.load(D + "mapped.npy", mmap_mode="r").sum())


def fromfile():
    import numpy as np
    return float(np.fromfile(D + "raw.f32", dtype=np.float32).sum())


def pil():
    from PIL import Image
    with Image.open(D + "image.png") as img:
        return [list(img.size), digest(img.tobytes())]


def json_load():
    with open(D + "record.json") as f:
        return json.load(f)


def pickle_load():
    import pickle
    with open(D + "record.pkl", "rb") as f:
        return pickle.load(f)


def tar():
    import tarfile
    with tarfile.open(D + "bundle.tar.gz") as t:
        return [t.getnames(), digest(t.extractfile("inner/a.txt").read())]


def zip_():
    import zipfile
    with zipfile.ZipFile(D + "bundle.zip") as z:
        return [z.namelist(), digest(z.read("inner/b.txt"))]


def torch_load():
    import torch
    return float(torch.load(D + "tensor.pt").sum())


def h5_path():
    import h5py
    with h5py.File(D + "table.h5", "r") as f:
        return float(f["values"][()].sum())


def h5_fileobj():
    import h5py
    with open(D + "table2.h5", "rb") as raw, h5py.File(raw, "r") as f:
        return float(f["values"][()].sum())


def cv2_imread():
    import cv2
    img = cv2.imread(D + "photo.png")
    if img is None:
        raise OSError("cv2.imread returned None")
    return [list(img.shape), digest(img.tobytes())]


def cv2_imdecode():
    import cv2, numpy as np
    img = cv2.imdecode(np.fromfile(D + "photo2.png", dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError("cv2.imdecode returned None")
    return [list(img.shape), digest(img.tobytes())]


def sqlite_ro():
    import sqlite3
    con = sqlite3.connect(f"file:{D}table.sqlite?mode=ro", uri=True)
    try:
        return con.execute("select sum(value) from t").fetchone()[0]
    finally:
        con.close()


def sqlite_rw():
    import sqlite3
    con = sqlite3.connect(D + "table2.sqlite")
    try:
        return con.execute("select sum(value) from t").fetchone()[0]
    finally:
        con.close()


def tf_read_file():
    import tensorflow as tf
    return digest(tf.io.read_file(D + "image3.png").numpy())


READERS = {
    "pandas.read_csv": pandas_csv,
    "numpy.load (.npy)": npy,
    "numpy.load (.npz)": npz,
    "numpy.load (mmap_mode='r')": npy_mmap,
    "numpy.fromfile": fromfile,
    "PIL.Image.open": pil,
    "json.load": json_load,
    "pickle.load": pickle_load,
    "tarfile.open": tar,
    "zipfile.ZipFile": zip_,
    "torch.load": torch_load,
    "h5py.File(path)": h5_path,
    "h5py.File(open(path, 'rb'))": h5_fileobj,
    "cv2.imread": cv2_imread,
    "cv2.imdecode(numpy.fromfile(path))": cv2_imdecode,
    "sqlite3.connect (read-only)": sqlite_ro,
    "sqlite3.connect": sqlite_rw,
    "tf.io.read_file": tf_read_file,
}

out = {}
for name, reader in READERS.items():
    try:
        out[name] = {"ok": True, "value": reader()}
    except ImportError as exc:
        out[name] = {"ok": None, "error": f"not installed: {exc.name}"}
    except Exception as exc:
        out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def _optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        return None


def _write_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    pd.DataFrame({"key": range(50), "value": rng.random(50)}).to_csv(
        folder / "table.csv", index=False
    )
    np.save(folder / "array.npy", rng.random((8, 8)))
    np.save(folder / "mapped.npy", rng.random((16, 4)))
    np.savez(folder / "arrays.npz", a=rng.random(5), b=np.arange(7))
    rng.random(64).astype(np.float32).tofile(folder / "raw.f32")
    for name in ("image.png", "photo.png", "photo2.png", "image3.png"):
        pixels = rng.integers(0, 256, (24, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    (folder / "record.json").write_text(json.dumps({"labels": ["cat", "dog"], "n": 2}))
    (folder / "record.pkl").write_bytes(pickle.dumps({"labels": ["cat", "dog"], "n": 3}))
    _write_archives(folder)
    _write_sqlite(folder / "table.sqlite")
    _write_sqlite(folder / "table2.sqlite")
    torch, h5py = _optional("torch"), _optional("h5py")
    if torch is not None:
        torch.save(torch.arange(10, dtype=torch.float32), folder / "tensor.pt")
    if h5py is not None:
        for name in ("table.h5", "table2.h5"):
            with h5py.File(folder / name, "w") as h5:
                h5["values"] = rng.random(32)


def _write_archives(folder: Path) -> None:
    inner = folder.parent / "inner"
    inner.mkdir()
    (inner / "a.txt").write_text("alpha\n")
    (inner / "b.txt").write_text("beta\n")
    with tarfile.open(folder / "bundle.tar.gz", "w:gz") as tar:
        tar.add(inner / "a.txt", arcname="inner/a.txt")
        tar.add(inner / "b.txt", arcname="inner/b.txt")
    with zipfile.ZipFile(folder / "bundle.zip", "w") as zf:
        zf.write(inner / "a.txt", "inner/a.txt")
        zf.write(inner / "b.txt", "inner/b.txt")


def _write_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute("create table t (value integer)")
        con.executemany("insert into t values (?)", [(i,) for i in range(10)])
    con.close()


@pytest.fixture(scope="module")
def origin(tmp_path_factory, moto_server):
    """A pushed repo with one file per reader in ``data/compat`` and ``read_all.py``."""
    from dvc_stream.testing.repos import make_repo

    repo = make_repo(tmp_path_factory.mktemp("readers") / "origin", moto_server)
    _write_files(repo.root / COMPAT)
    (repo.root / "read_all.py").write_text(READ_ALL)
    repo.dvc("add", "-q", COMPAT)
    repo.git("add", "read_all.py", f"{COMPAT}.dvc", "data/.gitignore")
    repo.commit("readers")
    repo.push()
    return repo


@pytest.fixture(scope="module")
def pulled(origin) -> dict:
    return _last_json(run(pulled_clone(origin), sys.executable, "read_all.py").stdout)


@pytest.fixture(scope="module")
def hooked(origin) -> dict:
    """A clone that pulled nothing, under the hooks alone."""
    proc = stream(origin.clone(), sys.executable, "read_all.py", options=("--prefetch", "none"))
    return _last_json(proc.stdout)


@pytest.fixture(scope="module")
def mounted(origin) -> dict:
    """A clone that pulled nothing, under ``--mount``: hooks and a FUSE view."""
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("--mount needs /dev/fuse and fusermount3")
    options = ("--mount", "--prefetch", "none")
    proc = stream(origin.clone(), sys.executable, "read_all.py", options=options)
    return _last_json(proc.stdout)


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _reference(pulled: dict, reader: str) -> dict:
    if pulled[reader]["ok"] is None:
        pytest.skip(pulled[reader]["error"])
    assert pulled[reader]["ok"], f"fails even on pulled data: {pulled[reader]['error']}"
    return pulled[reader]


@pytest.mark.parametrize("reader", list(EXPECTED))
def test_reader_under_hooks(pulled, hooked, reader):
    expected = _reference(pulled, reader)
    if EXPECTED[reader] == "hooks":
        assert hooked[reader] == expected
    else:
        assert hooked[reader]["ok"] is False, "works under the hooks now: update EXPECTED, README"


@pytest.mark.parametrize("reader", list(EXPECTED))
def test_reader_under_mount(pulled, mounted, reader):
    assert mounted[reader] == _reference(pulled, reader)
