"""Helpers for the reliability suite: ``dvc stream`` in its own process group, leftovers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from dvc_stream.testing.programs import (
    last_json,
    md5,
    spawn_stream,
    stream,
    wait_for,
    write_script,
)
from dvc_stream.testing.repos import DvcRepo

__all__ = [
    "DOWNLOADS",
    "READ",
    "group_members",
    "kill_group",
    "last_json",
    "md5",
    "partial_files",
    "rss_kib",
    "spawn_stream",
    "stream",
    "temp_files",
    "wait_for",
    "write_script",
]

DOWNLOADS = Path(".dvc/tmp/stream-downloads")
STAGING = Path(".dvc/tmp/stream-place")

READ = r"""
import hashlib, json, sys
from concurrent.futures import ThreadPoolExecutor
def read(path):
    try:
        with open(path, "rb") as fobj:
            data = fobj.read()
        return ["ok", len(data), hashlib.md5(data).hexdigest()]
    except OSError as exc:
        return [type(exc).__name__, exc.errno, str(exc)]
paths = sys.argv[1:]
with ThreadPoolExecutor(8) as pool:
    print(json.dumps(dict(zip(paths, pool.map(read, paths)))))
"""


SELECTED_ONLY = {
    "long": "a long run: `nox -s reliability` or `pytest -m long`",
    "heavy": "slow: `nox -s reliability` or `pytest -m heavy` (CI runs them)",
}


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``long`` and ``heavy`` tests unless the marker expression asks for them."""
    asked = config.getoption("markexpr") or ""
    for name, reason in SELECTED_ONLY.items():
        if name in asked:
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if item.get_closest_marker(name) is not None:
                item.add_marker(skip)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fobj:
                fields = fobj.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def partial_files(repo: DvcRepo, dataset_path: str, files: dict[str, bytes]) -> list[str]:
    """Files in the workspace or the cache that are not exactly what they should be."""
    bad = []
    base = repo.root / dataset_path
    for path in base.rglob("*") if base.exists() else ():
        if path.is_file() or path.is_symlink():
            rel = path.relative_to(base).as_posix()
            if rel not in files or path.read_bytes() != files[rel]:
                bad.append(str(path))
    digests = {md5(data) for data in files.values()}
    cache = repo.root / ".dvc/cache/files/md5"
    for path in cache.rglob("*") if cache.exists() else ():
        if path.is_file() and not path.name.endswith(".dir"):
            oid = path.parent.name + path.name
            if oid not in digests or md5(path.read_bytes()) != oid:
                bad.append(str(path))
    return bad


def temp_files(repo: DvcRepo) -> list[str]:
    """Temporary files dvc stream owns: downloads in progress and placements in progress."""
    found = [str(p) for p in (repo.root / DOWNLOADS).glob("*")]
    found += [str(p) for p in (repo.root / STAGING).glob("*")]
    found += [str(p) for p in repo.root.rglob("*.dvc-stream-tmp")]
    return found


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fobj:
        for line in fobj:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
