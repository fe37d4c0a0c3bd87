"""Helpers for the end-to-end ``dvc stream`` tests: real moto S3, real ``dvc``, real children."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from dvc_stream.testing.repos import DvcRepo


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_script(directory: Path, name: str, text: str) -> Path:
    path = Path(directory) / name
    path.write_text(text)
    return path


def stream(
    repo: DvcRepo,
    *command: str | Path,
    options: tuple[str, ...] = ("--prefetch", "none"),
    check: bool = True,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``dvc stream [options] -- command...`` in ``repo`` (or ``cwd``)."""
    return repo.dvc(
        "stream", *options, "--", *map(str, command), check=check, cwd=cwd, env=env or repo.env
    )


def stream_python(
    repo: DvcRepo, script: Path, *args: str, python: str = sys.executable, **kw
) -> subprocess.CompletedProcess[str]:
    return stream(repo, python, script, *args, **kw)


def run_python(
    repo: DvcRepo, script: Path, *args: str, python: str = sys.executable, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The same script without ``dvc stream``, e.g. on a pulled clone."""
    proc = subprocess.run(
        [python, str(script), *args],
        cwd=cwd or repo.root,
        env=repo.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def last_json(proc: subprocess.CompletedProcess[str]):
    """The JSON document a script printed on its last stdout line."""
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output\nstderr:\n{proc.stderr}"
    return json.loads(lines[-1])


def object_gets(log: list[tuple[str, str]], oid: str | None = None) -> list[str]:
    """GETs of data objects (``/files/md5/``), not of ``.dir`` manifests."""
    paths = [
        path.split("?", 1)[0] for method, path in log if method == "GET" and "/files/md5/" in path
    ]
    paths = [p for p in paths if not p.endswith(".dir")]
    if oid is not None:
        paths = [p for p in paths if p.endswith(f"/{oid[:2]}/{oid[2:]}")]
    return paths
