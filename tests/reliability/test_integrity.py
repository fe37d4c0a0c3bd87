"""Every object is checked against its md5 before it is placed: a corrupted object on the remote
is reported, and neither cached nor placed."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

from .conftest import READ, last_json, md5, partial_files, stream, temp_files, write_script

SIZE = 1000


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda data: b"x" * len(data), id="same size"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data + b"\0", id="longer"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_corrupted_object_is_reported_not_placed(dvc_repo, moto_server, tmp_path, corrupt):
    dataset = dvc_repo.make_dataset("data/images", nfiles=4, size=SIZE, depth=0)
    dvc_repo.wipe()
    bad, good = sorted(dataset.files)[:2]
    oid = md5(dataset.files[bad])
    bucket = dvc_repo.remote_url.split("/")[2]
    key = f"store/files/md5/{oid[:2]}/{oid[2:]}"
    moto_server.client().put_object(Bucket=bucket, Key=key, Body=corrupt(dataset.files[bad]))
    script = write_script(tmp_path, "read.py", READ)
    paths = [f"data/images/{bad}", f"data/images/{good}", f"data/images/{bad}"]
    stats_file = tmp_path / "stats.json"
    proc = stream(
        dvc_repo,
        sys.executable,
        script,
        *paths,
        options=("--prefetch", "none", "--stats", stats_file),
    )
    got = last_json(proc)
    kind, _errno, message = got[paths[0]]
    assert kind == "OSError", got
    assert paths[0] in message and "'storage'" in message and "corrupted" in message, message
    assert got[paths[1]] == ["ok", SIZE, md5(dataset.files[good])]
    assert not os.path.lexists(dvc_repo.root / paths[0])
    assert not (dvc_repo.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).exists()
    assert partial_files(dvc_repo, "data/images", dataset.files) == []
    assert temp_files(dvc_repo) == []
    assert json.loads(stats_file.read_text())["failed_files"] >= 1


def test_corrupted_tree_is_reported(dvc_repo, moto_server, tmp_path):
    dataset = dvc_repo.make_dataset("data/images", nfiles=4, size=SIZE, depth=0)
    dvc_repo.wipe()
    oid = yaml_oid(dvc_repo)
    bucket = dvc_repo.remote_url.split("/")[2]
    key = f"store/files/md5/{oid[:2]}/{oid[2:]}"
    forged = json.dumps([{"md5": md5(b"evil"), "relpath": rel} for rel in dataset.files])
    moto_server.client().put_object(Bucket=bucket, Key=key, Body=forged.encode())
    script = write_script(tmp_path, "read.py", READ)
    path = f"data/images/{sorted(dataset.files)[0]}"
    got = last_json(stream(dvc_repo, sys.executable, script, path))
    assert got[path][0] == "OSError" and "corrupted" in got[path][2], got
    assert not (dvc_repo.root / "data/images").exists()
    assert not (dvc_repo.root / ".dvc/cache/files/md5" / oid[:2] / oid[2:]).exists()
    assert hashlib.md5(forged.encode()).hexdigest() != oid.removesuffix(".dir")


def yaml_oid(repo) -> str:
    import yaml

    return yaml.safe_load((repo.root / "data/images.dvc").read_text())["outs"][0]["md5"]
