"""What ``dvc append`` is given: source files and directories, walked and checked, and the
relpaths they take in the tracked tree, checked against the old tree and the workspace.

Every check raises ``AppendError`` before anything is written.
"""

from __future__ import annotations

import errno
import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dvc_stream.errors import AppendError
from dvc_stream.workspace import trees

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dvc.output import Output
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo


@dataclass(frozen=True)
class NewFile:
    source: str  # absolute path on disk
    relpath: str  # posix, relative to the output
    size: int | None = None
    hash_info: HashInfo | None = None


def dest_parts(dest: str | None) -> tuple[str, ...]:
    if not dest:
        return ()
    norm = posixpath.normpath(dest.replace(os.sep, "/"))
    parts = tuple(p for p in norm.split("/") if p not in ("", "."))
    if norm.startswith("/") or ".." in parts:
        raise AppendError(f"--dest '{dest}' must be a relative path inside the tracked directory")
    return parts


def collect_sources(
    repo: Repo, out: Output, sources: list[str], dest_parts: tuple[str, ...]
) -> list[NewFile]:
    out_real = os.path.realpath(out.fs_path)
    dvc_real = os.path.realpath(repo.dvc_dir)
    files: list[NewFile] = []
    for src in sources:
        path = os.path.abspath(os.path.expanduser(src))
        _check_source(src, path, out_real, dvc_real)
        base = (*dest_parts, os.path.basename(path))
        if os.path.isdir(path):
            walked = _walk_dir(src, path)
            files.extend(NewFile(p, "/".join((*base, *rel))) for p, rel in walked)
        else:
            files.append(NewFile(path, "/".join(base)))
    if not files:
        raise AppendError("nothing to append: the sources contain no files")
    return files


def _check_source(src: str, path: str, out_real: str, dvc_real: str) -> None:
    if not os.path.lexists(path):
        raise AppendError(f"source '{src}' does not exist")
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AppendError(f"source '{src}' is a symlink loop") from None
        raise AppendError(f"source '{src}' is a broken symlink or unreadable: {exc}") from None
    real = os.path.realpath(path)
    if real == out_real or real.startswith(out_real + os.sep):
        raise AppendError(f"source '{src}' is the tracked directory or inside it")
    if out_real.startswith(real + os.sep):
        raise AppendError(f"source '{src}' contains the tracked directory")
    if (
        real == dvc_real
        or real.startswith(dvc_real + os.sep)
        or dvc_real.startswith(real + os.sep)
    ):
        raise AppendError(f"source '{src}' overlaps DVC's own directory '{dvc_real}'")
    if not (os.path.isdir(path) or os.path.isfile(path)):
        raise AppendError(f"source '{src}' is not a regular file or directory")
    if not os.path.basename(path):
        raise AppendError(f"source '{src}' has no name to add it under")


def _walk_dir(src: str, top: str) -> list[tuple[str, tuple[str, ...]]]:
    """Files under ``top`` (following symlinks) with their parts relative to it, sorted."""
    found: list[tuple[str, tuple[str, ...]]] = []
    stack: list[tuple[str, tuple[str, ...], frozenset[str]]] = [
        (top, (), frozenset([os.path.realpath(top)]))
    ]
    while stack:
        path, rel, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            raise AppendError(f"cannot read directory '{path}' of source '{src}': {exc}") from None
        for entry in entries:
            kind = _entry_kind(src, entry)
            if kind == "dir":
                real = os.path.realpath(entry.path)
                if real in ancestors:
                    raise AppendError(
                        f"source '{src}' contains a symlink loop: '{entry.path}' -> '{real}'"
                    )
                stack.append((entry.path, (*rel, entry.name), ancestors | {real}))
            else:
                found.append((entry.path, (*rel, entry.name)))
    found.sort(key=lambda item: item[1])
    return found


def _entry_kind(src: str, entry: os.DirEntry[str]) -> str:
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AppendError(f"source '{src}' contains a symlink loop: '{entry.path}'") from None
        raise AppendError(f"cannot read '{entry.path}' of source '{src}': {exc}") from None
    if entry.is_symlink():
        raise AppendError(f"source '{src}' contains a broken symlink: '{entry.path}'")
    raise AppendError(f"source '{src}' contains '{entry.path}', which is not a regular file")


def _parents(relpaths: Iterable[str]) -> set[str]:
    dirs: set[str] = set()
    for relpath in relpaths:
        parts = relpath.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return dirs


def check_conflicts(
    where: str, old: dict[str, HashInfo], files: list[NewFile], force: bool
) -> list[str]:
    """Refuse duplicates and file/directory clashes; return the relpaths ``force`` replaces."""
    seen: dict[str, str] = {}
    for new in files:
        if new.relpath in seen:
            raise AppendError(
                f"'{seen[new.relpath]}' and '{new.source}' would both be added as "
                f"'{where}/{new.relpath}'"
            )
        seen[new.relpath] = new.source
    old_dirs, new_dirs = _parents(old), _parents(seen)
    for relpath, source in seen.items():
        if relpath in old_dirs or relpath in new_dirs:
            raise AppendError(
                f"cannot add '{source}' as '{where}/{relpath}': that is a directory in the tree"
            )
        parts = relpath.split("/")
        for i in range(1, len(parts)):
            if (parent := "/".join(parts[:i])) in old or parent in seen:
                raise AppendError(
                    f"cannot add '{source}' as '{where}/{relpath}': "
                    f"'{where}/{parent}' is a file in the tree"
                )
        if relpath in old and not force:
            raise AppendError(f"'{where}/{relpath}' is already tracked; use --force to replace it")
    trees.check_relpaths([*old, *(r for r in seen if r not in old)], where)
    return sorted(r for r in seen if r in old)


def check_workspace(out: Output, files: list[NewFile], replaced: set[str]) -> None:
    """Refuse to overwrite or shadow untracked things that sit in the workspace."""
    root = out.fs_path
    checked: set[str] = set()
    for new in files:
        parts = new.relpath.split("/")
        for i in range(len(parts)):
            path = os.path.join(root, *parts[:i])
            if path in checked:
                continue
            checked.add(path)
            if os.path.lexists(path) and not os.path.isdir(path):
                raise AppendError(f"'{path}' is in the way: it must be a directory")
        path = os.path.join(root, *parts)
        if os.path.isdir(path) and not os.path.islink(path):
            raise AppendError(f"'{path}' is a directory in the workspace")
        if os.path.lexists(path) and new.relpath not in replaced:
            raise AppendError(f"'{path}' exists in the workspace but is not tracked; move it away")
