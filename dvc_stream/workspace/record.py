"""The partial-workspace record: the outputs dvc-stream placed files into, and for which version.

DVC keeps no record of which files it placed: its state database maps a path's inode, mtime and
size to an md5, which tells whether a file still holds the bytes recorded for it, but not who put
it there nor for which tracked version. This record adds what is missing, per output: "absent
files here are not fetched yet, not deleted", and "the present files were placed for version
``oid``" (the ``.dir`` hash of a directory, the md5 of a file). DVC's own commands read it to
keep absent entries in a partial output, and a later run reads it to reconcile the present files
after a version switch.

It lives in ``.dvc/tmp/stream-workspace.json``. Every change is a read-modify-write under an
exclusive lock on ``.dvc/tmp/stream-workspace.lock``, shared by every ``dvc stream`` run,
notebook and DVC command of the workspace, and the file is replaced atomically, so a reader
never sees half of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

RECORD = "stream-workspace.json"
LOCK = "stream-workspace.lock"
FORMAT = 1


@dataclass(frozen=True)
class Claim:
    """One output that holds files placed by dvc-stream."""

    path: str  # posix, relative to the repo root
    oid: str  # the tracked hash its present files were placed for


def load(tmp_dir: str) -> dict[str, Claim]:
    """The record as it is now (no lock: the file is always whole); empty if there is none."""
    try:
        with open(os.path.join(tmp_dir, RECORD), encoding="utf-8") as fobj:
            data = json.load(fobj)
        if data.get("format") != FORMAT:
            return {}
        return {path: Claim(path, item["oid"]) for path, item in data["outputs"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


@contextlib.contextmanager
def editing(tmp_dir: str) -> Iterator[dict[str, Claim]]:
    """The record, locked against every other writer; what the caller leaves in the mapping is
    saved when the block ends without an exception."""
    os.makedirs(tmp_dir, exist_ok=True)
    fd = os.open(os.path.join(tmp_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        claims = load(tmp_dir)
        before = dict(claims)
        yield claims
        if claims != before:
            _save(tmp_dir, claims)
    finally:
        os.close(fd)  # releases the lock


def claim(tmp_dir: str, path: str, oid: str) -> None:
    """Record that files of version ``oid`` are (about to be) placed in the output ``path``."""
    with editing(tmp_dir) as claims:
        claims[path] = Claim(path, oid)


def release(tmp_dir: str, paths: Iterable[str]) -> None:
    """Forget outputs that are whole again (or gone): DVC's own rules apply to them as before."""
    with editing(tmp_dir) as claims:
        for path in paths:
            claims.pop(path, None)


def _save(tmp_dir: str, claims: dict[str, Claim]) -> None:
    path = os.path.join(tmp_dir, RECORD)
    if not claims:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    outputs = {c.path: {"oid": c.oid} for c in sorted(claims.values(), key=lambda c: c.path)}
    write_outputs(path, outputs)


def write_outputs(path: str, outputs: dict[str, dict]) -> None:
    """Replace the JSON file ``path`` by ``{"format": FORMAT, "outputs": outputs}`` atomically:
    a reader never sees half of it."""
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fobj:
            json.dump({"format": FORMAT, "outputs": outputs}, fobj, indent=1)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
