"""Fixtures for the ``dvc stream --mount`` tests: real ``dvc``, moto S3, real FUSE mounts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def fuse_usable() -> bool:
    return (
        sys.platform.startswith("linux")
        and os.path.exists("/dev/fuse")
        and shutil.which("fusermount3") is not None
    )


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, from /proc/self/mounts."""
    with open("/proc/self/mounts", encoding="utf-8") as fobj:
        points = [line.split()[1] for line in fobj]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


def stream_mounted(
    repo,
    *command: str | Path,
    options: tuple[str, ...] = ("--prefetch", "none"),
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``dvc stream --mount [options] -- command...`` in ``repo``."""
    return repo.dvc(
        "stream", "--mount", *options, "--", *map(str, command), check=check, env=env or repo.env
    )


def shell(repo, script: str, *, options: tuple[str, ...] = ("--prefetch", "none"), **kw):
    """A shell script under ``dvc stream --mount``, run from the repo root."""
    return stream_mounted(repo, "sh", "-c", script, options=options, **kw)


def read_stats(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def fuse() -> None:
    if not fuse_usable():
        pytest.skip("needs /dev/fuse and fusermount3")


@pytest.fixture(scope="module")
def origin(moto_server, tmp_path_factory):
    """A repo with a pushed dataset two levels deep, shared by the tests of a module."""
    from dvc_stream.testing.repos import make_repo

    repo = make_repo(tmp_path_factory.mktemp("mount") / "origin", moto_server)
    dataset = repo.make_dataset("data/images", nfiles=24, size=3000, depth=2, fanout=3)
    return repo, dataset


@pytest.fixture
def images(fuse, origin, tmp_path):
    """A fresh clone of ``origin``: nothing in the workspace or the cache.

    Fails the test if a mount is left behind.
    """
    repo, dataset = origin
    clone = repo.clone(tmp_path / "repo")
    yield clone, dataset
    leftovers = mounts_under(clone.root)
    for point in leftovers:
        subprocess.run(["fusermount3", "-u", "-z", point], check=False)
    assert leftovers == [], "a mount was left behind"
