"""The in-process API: ``install_hooks``/``uninstall_hooks`` and ``streaming()``."""

from __future__ import annotations

from .conftest import last_json, md5, run_python, write_script

API = r"""
import builtins, glob, hashlib, io, json, os, pathlib, sys

root = sys.argv[1]
names = ["stat", "lstat", "open", "access", "listdir", "scandir", "chdir"]
path_names = ["exists", "lexists", "isfile", "isdir"]


def current():
    out = {f"os.{n}": getattr(os, n) for n in names}
    out.update({f"os.path.{n}": getattr(os.path, n) for n in path_names})
    out.update({"builtins.open": builtins.open, "io.open": io.open, "io.FileIO": io.FileIO})
    if sys.version_info < (3, 11):
        acc = vars(pathlib._NormalAccessor)
        out.update({f"accessor.{n}": acc[n] for n in ("stat", "open", "listdir", "scandir")})
    if sys.version_info >= (3, 13):
        out.update({f"globber.{n}": vars(glob._StringGlobber)[n] for n in ("lstat", "scandir")})
    return out


saved = current()


def restored():
    return sorted(k for k, v in current().items() if v is not saved[k])


def read(path):
    with open(path, "rb") as fobj:
        return hashlib.md5(fobj.read()).hexdigest()


import dvc_stream

out = {}
a, b, c = "data/images/d0/f00000.bin", "data/images/d1/f00001.bin", "data/images/d0/f00002.bin"
out["before"] = [os.path.exists(a), os.path.exists("data/images")]

broker = dvc_stream.install_hooks(root, prefetch="none")
out["patched"] = sorted(k for k, v in current().items() if v is saved[k])
out["during"] = [
    os.path.exists(a), sorted(os.listdir("data/images")), os.path.getsize(a),
    pathlib.Path(b).stat().st_size, read(a), pathlib.Path(b).read_bytes().hex(),
]
stats = dvc_stream.uninstall_hooks()
out["not_restored"] = restored()
out["stats"] = [stats.demand_files, stats.failed_files]
out["after"] = [os.path.exists(c), os.path.exists("data/images/d1/f00003.bin")]
try:
    open(c, "rb")
    out["after_open"] = "opened"
except FileNotFoundError:
    out["after_open"] = "FileNotFoundError"
out["uninstall_again"] = dvc_stream.uninstall_hooks()

with dvc_stream.streaming(root, prefetch="none") as broker:
    out["ctx_patched"] = builtins.open is not saved["builtins.open"]
    out["ctx"] = [read(c), sorted(os.listdir("data/images/d1"))]
out["ctx_not_restored"] = restored()
out["ctx_stats"] = broker.stats.demand_files
print(json.dumps(out))
"""


def test_install_uninstall_streaming(dvc_repo, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=8, size=300, depth=1, fanout=2)
    dvc_repo.wipe()
    script = write_script(tmp_path, "api.py", API)
    got = last_json(run_python(dvc_repo, script, str(dvc_repo.root)))
    files = dataset.files
    assert got["before"] == [False, False]
    assert got["patched"] == [], "install_hooks() left these unpatched"
    assert got["during"] == [
        True,
        ["d0", "d1"],
        300,
        300,
        md5(files["d0/f00000.bin"]),
        files["d1/f00001.bin"].hex(),
    ]
    assert got["not_restored"] == []
    assert got["stats"] == [2, 0]
    assert got["after"] == [False, False]
    assert got["after_open"] == "FileNotFoundError"
    assert got["uninstall_again"] is None
    assert got["ctx_patched"] is True
    assert got["ctx"] == [
        md5(files["d0/f00002.bin"]),
        ["f00001.bin", "f00003.bin", "f00005.bin", "f00007.bin"],
    ]
    assert got["ctx_not_restored"] == []
    assert got["ctx_stats"] == 1
    present = dvc_repo.tracked_files("data/images")
    assert present == {k: files[k] for k in ("d0/f00000.bin", "d1/f00001.bin", "d0/f00002.bin")}


DVC_API = r"""
import json, os, sys
import dvc_stream
from dvc.repo import Repo

dvc_stream.install_hooks(sys.argv[1], prefetch="none")
out = {"read": len(open("data/images/d0/f00000.bin", "rb").read())}
with Repo(sys.argv[1]) as repo:
    out["status"] = repo.status()
    data = repo.data_status(granular=True)
    out["data_status"] = {k: v for k, v in data.items() if k in ("uncommitted", "committed")}
    out["diff"] = {k: v for k, v in repo.diff().items() if k != "not in cache"}
out["listed_after"] = sorted(os.listdir("data/images/d1"))
out["fetched"] = dvc_stream.uninstall_hooks().demand_files
print(json.dumps(out))
"""


def test_dvc_api_in_a_hooked_process_sees_the_real_workspace(dvc_repo, tmp_path):
    """A notebook streams, then asks DVC for the status: DVC sees the files present and the
    absent ones as tracked (nothing modified, nothing deleted, nothing fetched to hash), and the
    hooks serve the program again after."""
    dvc_repo.make_dataset("data/images", nfiles=8, size=300, depth=1, fanout=2)
    dvc_repo.wipe()
    script = write_script(tmp_path, "notebook.py", DVC_API)
    got = last_json(run_python(dvc_repo, script, str(dvc_repo.root)))
    assert got == {
        "read": 300,
        "status": {},
        "data_status": {"uncommitted": {}, "committed": {}},
        "diff": {"added": [], "deleted": [], "modified": [], "renamed": []},
        "listed_after": ["f00001.bin", "f00003.bin", "f00005.bin", "f00007.bin"],
        "fetched": 1,
    }
