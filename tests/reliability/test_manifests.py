"""A ``.dir`` manifest from the remote is untrusted: relpaths that escape the output, absolute
ones and duplicates are refused by ``dvc stream`` and ``dvc append`` alike, and nothing is ever
written outside the output directory."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import READ, last_json, stream, write_script

LISTDIR = r"""
import json, os, sys
out = {}
try:
    out["listdir"] = sorted(os.listdir(sys.argv[1]))
except OSError as exc:
    out["listdir"] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


def _evil_relpaths(tmp_path) -> dict[str, list[str]]:
    return {
        "parent": ["../../../escaped.bin", "f00000.bin"],
        "parent-in-repo": ["../../escaped.bin", "f00000.bin"],
        "dotdot-inside": ["d0/../../escaped.bin", "f00000.bin"],
        "absolute": [str(tmp_path / "abs-escaped.bin"), "f00000.bin"],
        "duplicate": ["f00000.bin", "f00000.bin"],
        "file-and-dir": ["f00000.bin", "f00000.bin/x"],
    }


CASES = list(_evil_relpaths(Path("/never")))
REFUSED = ("unsafe path", "duplicate path", "both a file and a directory")


def _plant_tree(repo, moto_server, path: str, relpaths: list[str], digests: list[str]) -> None:
    """Track ``path`` by a ``.dvc`` file whose ``.dir`` (pushed) has these relpaths."""
    entries = [{"md5": digests[i % 2], "relpath": rel} for i, rel in enumerate(relpaths)]
    raw = json.dumps(entries).encode()
    oid = hashlib.md5(raw).hexdigest() + ".dir"
    bucket = repo.remote_url.split("/")[2]
    key = f"store/files/md5/{oid[:2]}/{oid[2:]}"
    moto_server.client().put_object(Bucket=bucket, Key=key, Body=raw)
    out = {"md5": oid, "nfiles": len(entries), "hash": "md5", "path": os.path.basename(path)}
    (repo.root / f"{path}.dvc").write_text(yaml.safe_dump({"outs": [out]}))


@pytest.fixture(scope="module")
def planted(tmp_path_factory, moto_server):
    """One repo with a tracked directory per unsafe case, never pulled."""
    from dvc_stream.testing import make_repo

    base = tmp_path_factory.mktemp("manifests")
    repo = make_repo(base / "repo", moto_server)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in repo.env.items():
            mp.setenv(name, value)
        dataset = repo.make_dataset("data/images", nfiles=2, size=100, depth=0)
        digests = [hashlib.md5(data).hexdigest() for data in dataset.files.values()]
        for case, relpaths in _evil_relpaths(base).items():
            _plant_tree(repo, moto_server, f"data/{case}", relpaths, digests)
        repo.wipe()
        yield repo, base


def _escaped(repo, base) -> list[str]:
    candidates = [
        repo.root / "escaped.bin",
        repo.root.parent / "escaped.bin",
        base / "abs-escaped.bin",
        repo.root / "data/escaped.bin",
    ]
    candidates += [repo.root / "data" / case for case in CASES]
    return [str(p) for p in candidates if os.path.lexists(p)]


@pytest.mark.heavy
def test_stream_refuses_unsafe_trees(planted, tmp_path):
    repo, base = planted
    reader = write_script(tmp_path, "read.py", READ)
    lister = write_script(tmp_path, "list.py", LISTDIR)
    relpaths = _evil_relpaths(base)
    targets = [f"data/{case}/f00000.bin" for case in CASES]
    targets += [f"data/{case}/{relpaths[case][0]}" for case in CASES]
    got = last_json(stream(repo, sys.executable, reader, *targets))
    for target in targets:
        assert got[target][0] in ("OSError", "FileNotFoundError", "NotADirectoryError"), got
    for case in CASES:
        message = got[f"data/{case}/f00000.bin"][2]
        assert any(word in message for word in REFUSED), message
        listed = last_json(stream(repo, sys.executable, lister, f"data/{case}"))["listdir"]
        assert listed[0] == "OSError", listed
    assert _escaped(repo, base) == []


@pytest.mark.parametrize("case", CASES)
def test_append_refuses_unsafe_tree(planted, tmp_path, case):
    repo, base = planted
    source = tmp_path / "new.bin"
    source.write_bytes(b"new")
    before = (repo.root / f"data/{case}.dvc").read_bytes()
    proc = repo.dvc("append", f"data/{case}", source, check=False)
    assert proc.returncode != 0
    assert any(word in proc.stderr for word in REFUSED), proc.stderr
    assert "Traceback" not in proc.stderr
    assert (repo.root / f"data/{case}.dvc").read_bytes() == before
    assert _escaped(repo, base) == []


def test_dvc_pull_itself_writes_outside(dvc_repo, moto_server, tmp_path):
    """Why the checks exist: DVC 3.67.1 follows an escaping relpath (not a guarantee of ours)."""
    import dvc

    if dvc.__version__ != "3.67.1":
        pytest.skip("documents dvc 3.67.1's behaviour")
    dataset = dvc_repo.make_dataset("data/images", nfiles=2, size=100, depth=0)
    digests = [hashlib.md5(data).hexdigest() for data in dataset.files.values()]
    relpaths = _evil_relpaths(tmp_path)["parent"]
    _plant_tree(dvc_repo, moto_server, "data/images", relpaths, digests)
    dvc_repo.wipe()
    dvc_repo.dvc("pull", check=False)
    assert (dvc_repo.root.parent / "escaped.bin").exists()
