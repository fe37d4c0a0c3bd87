"""Helpers for the end-to-end ``dvc stream`` tests: real moto S3, real ``dvc``, real children."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dvc_stream.testing.programs import last_json, md5, run, stream, write_script
from dvc_stream.testing.repos import DvcRepo

__all__ = [
    "last_json",
    "md5",
    "object_gets",
    "run_python",
    "stream",
    "stream_python",
    "write_script",
]


def stream_python(
    repo: DvcRepo, script: Path, *args: str, python: str = sys.executable, **kw
) -> subprocess.CompletedProcess[str]:
    return stream(repo, python, script, *args, **kw)


def run_python(
    repo: DvcRepo, script: Path, *args: str, python: str = sys.executable, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The same script without ``dvc stream``, e.g. on a pulled clone."""
    return run(repo, python, script, *args, cwd=cwd)


def object_gets(log: list[tuple[str, str]], oid: str | None = None) -> list[str]:
    """GETs of data objects (``/files/md5/``), not of ``.dir`` manifests."""
    paths = [
        path.split("?", 1)[0] for method, path in log if method == "GET" and "/files/md5/" in path
    ]
    paths = [p for p in paths if not p.endswith(".dir")]
    if oid is not None:
        paths = [p for p in paths if p.endswith(f"/{oid[:2]}/{oid[2:]}")]
    return paths
