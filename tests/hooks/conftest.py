"""Fixtures for the hooks: a fake resolver over a "remote" tree. Standard library + pytest only."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dvc_stream.hooks import patches
from dvc_stream.hooks.resolver import DIR, FILE, Entry

MTIME = 1_700_000_000.25

# relative path -> content; "data" (a directory) and "model.pkl" (a file) are the tracked outputs
TRACKED = {
    "data/a.txt": b"alpha\n",
    "data/b.bin": bytes(range(256)) * 300,
    "data/notes.txt": b"first line\n",
    "data/e.png": b"\x89PNG e",
    "data/run.sh": b"#!/bin/sh\necho hi\n",
    "data/sub/c.txt": b"charlie\n",
    "data/sub/deep/d.png": b"\x89PNG d" * 10,
    "data/sub/deep/f.txt": b"foxtrot",
    "data/img/1.png": b"\x89PNG 1" * 3,
    "data/img/2.png": b"\x89PNG 2" * 4,
    "data/img/nested/3.png": b"\x89PNG 3",
    "model.pkl": b"pickled" * 1000,
}
ROOTS = ("data", "model.pkl")
# present in the workspace before the program runs
PRESENT = ("data/a.txt", "data/sub/c.txt")
UNTRACKED = {"README.md": b"readme\n", "src/train.py": b"print('train')\n", "src/x.png": b"x"}


@dataclass
class FakeResolver:
    """The other side of ``Resolver``: answers from ``remote``, places files in ``workspace``."""

    remote: Path
    workspace: Path
    roots: tuple[str, ...] = ROOTS
    fail: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    depth: int = 0
    max_depth: int = 0
    read_order: bool = True  # what hints_read_order() says
    hints: list[list[str]] = field(default_factory=list)  # every prefetch call's paths

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._abs_roots = [os.path.join(self.workspace, r) for r in self.roots]

    def _enter(self, method: str, path: str) -> None:
        with self._lock:
            self.calls.append((method, path))
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth)

    def _leave(self) -> None:
        with self._lock:
            self.depth -= 1

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def _rel(self, path: str) -> str | None:
        for root in self._abs_roots:
            if path == root or path.startswith(root + "/"):
                return os.path.relpath(path, self.workspace)
        return None

    def is_candidate(self, path: str) -> bool:
        for root in self._abs_roots:
            if (
                path == root
                or path.startswith(root + "/")
                or root.startswith(path.rstrip("/") + "/")
            ):
                return True
        return False

    def _ancestor_names(self, path: str) -> dict[str, str] | None:
        names = {}
        for root in self._abs_roots:
            if root.startswith(path + "/") and path.startswith(str(self.workspace)):
                head = root[len(path) + 1 :].split("/")[0]
                is_leaf = head == root[len(path) + 1 :]
                names[head] = FILE if is_leaf and os.path.isfile(self._remote(root)) else DIR
        return names or None

    def _remote(self, path: str) -> str:
        return os.path.join(self.remote, os.path.relpath(path, self.workspace))

    def lookup(self, path: str) -> Entry | None:
        self._enter("lookup", path)
        try:
            return self._entry(path)
        finally:
            self._leave()

    def kind(self, path: str) -> str | None:
        self._enter("kind", path)
        try:
            entry = self._entry(path)
            return None if entry is None else entry.type
        finally:
            self._leave()

    def _entry(self, path: str) -> Entry | None:
        if self._rel(path) is None:
            if self._ancestor_names(path):
                return Entry(DIR, 0, MTIME)
            return None
        try:
            st = os.stat(self._remote(path))  # goes through the hooks: guarded
        except FileNotFoundError:
            return None
        kind = DIR if stat.S_ISDIR(st.st_mode) else FILE
        return Entry(kind, st.st_size, st.st_mtime, bool(st.st_mode & 0o100))

    def listdir(self, path: str) -> dict[str, str] | None:
        self._enter("listdir", path)
        try:
            if self._rel(path) is None:
                return self._ancestor_names(path)
            remote = self._remote(path)
            if not os.path.isdir(remote):
                return None
            return {
                e.name: DIR if e.is_dir() else FILE for e in os.scandir(remote)
            }  # hooked names, guarded
        finally:
            self._leave()

    def materialize(self, path: str) -> str:
        self._enter("materialize", path)
        try:
            if path in self.fail:
                raise OSError(errno.EIO, f"failed to fetch '{path}' from remote 's3://bucket/x'")
            remote = self._remote(path)
            if self._rel(path) is None or not os.path.isfile(remote):
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            if os.path.exists(path):  # another thread placed it already
                return path
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp{threading.get_ident()}"
            shutil.copy2(remote, tmp)
            os.replace(tmp, path)
            return path
        finally:
            self._leave()

    def prefetch(self, paths: list[str]) -> None:
        self._enter("prefetch", ",".join(paths))
        self.hints.append(list(paths))
        self._leave()

    def hints_read_order(self) -> bool:
        return self.read_order


def _write(base: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if rel.endswith(".sh"):
            path.chmod(0o755)
        else:
            path.chmod(0o644)
        os.utime(path, (MTIME, MTIME))


@dataclass
class View:
    workspace: Path  # partial: PRESENT + UNTRACKED
    pulled: Path  # everything, as after `dvc pull`
    remote: Path
    resolver: FakeResolver


@pytest.fixture
def view(tmp_path: Path):
    remote, workspace, pulled = tmp_path / "remote", tmp_path / "ws", tmp_path / "pulled"
    _write(remote, TRACKED)
    _write(pulled, {**TRACKED, **UNTRACKED})
    _write(workspace, {**{p: TRACKED[p] for p in PRESENT}, **UNTRACKED})
    for base in (remote, pulled, workspace):
        for d in ("data/sub", "data"):
            if (base / d).exists():
                os.utime(base / d, (MTIME, MTIME))
    cwd = os.getcwd()
    yield View(workspace, pulled, remote, FakeResolver(remote, workspace))
    patches.uninstall()
    os.chdir(cwd)


@pytest.fixture
def hooked(view: View):
    """Hooks installed, cwd in the partial workspace."""
    patches.install(view.resolver)
    os.chdir(view.workspace)
    yield view
    patches.uninstall()
