"""What an absent tracked path looks like: stat results, directory entries, listings.

Standard library only, like the rest of ``hooks/``.
"""

from __future__ import annotations

import os
import stat
import zlib
from typing import TYPE_CHECKING

from .resolver import DIR, FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from .resolver import Entry

# NOTE: captured at import, before any hook is installed: these never go through the hooks.
_stat = os.stat
_getuid = getattr(os, "getuid", lambda: 0)
_getgid = getattr(os, "getgid", lambda: 0)
_dirname = os.path.dirname

FILE_MODE = stat.S_IFREG | 0o644
EXEC_MODE = stat.S_IFREG | 0o755
DIR_MODE = stat.S_IFDIR | 0o755


def fake_ino(path: str) -> int:
    """A stable inode number for an absent path, far above the ones filesystems hand out."""
    return (1 << 62) | zlib.crc32(path.encode("utf-8", "surrogateescape"))


def _nearest_dev(path: str) -> int:
    while True:
        try:
            return _stat(path).st_dev
        except OSError:
            parent = _dirname(path)
            if parent == path:
                return 0
            path = parent


def fake_stat(path: str, entry: Entry) -> os.stat_result:
    """The ``os.stat`` result that ``path`` would have after ``dvc pull``."""
    if entry.type == DIR:
        mode, size = DIR_MODE, 4096
    else:
        mode, size = (EXEC_MODE if entry.isexec else FILE_MODE), entry.size
    mtime = float(entry.mtime)
    mtime_ns = int(mtime * 1_000_000_000)
    fields = (mode, fake_ino(path), _nearest_dev(path), 1, _getuid(), _getgid(), size)
    fields += (int(mtime),) * 3
    extra = {"st_atime": mtime, "st_mtime": mtime, "st_ctime": mtime}
    extra.update(st_atime_ns=mtime_ns, st_mtime_ns=mtime_ns, st_ctime_ns=mtime_ns)
    extra.update(st_blksize=4096, st_blocks=(size + 511) // 512)
    return os.stat_result(fields, extra)


def join(top: str, name: str) -> str:
    """``DirEntry.path`` as ``os.scandir(top)`` builds it."""
    return top + name if top.endswith(os.sep) else top + os.sep + name


class FakeDirEntry:
    """An ``os.DirEntry`` for a tracked name missing from the workspace."""

    __slots__ = ("_abs", "_stat_fn", "_type", "name", "path")

    def __init__(self, top: str, name: str, type_: str, abs_top: str, stat_fn: Callable) -> None:
        self.name = name
        self.path = join(top, name)
        self._type = type_
        self._abs = join(abs_top, name)
        self._stat_fn = stat_fn

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._type == DIR

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._type == FILE

    def is_symlink(self) -> bool:
        return False

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._stat_fn(self.path)

    def inode(self) -> int:
        return fake_ino(self._abs)

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class MergedScandir:
    """What ``os.scandir`` returns for a tracked directory: workspace entries, then the rest."""

    def __init__(self, entries: Iterable) -> None:
        self._it: Iterator = iter(entries)

    def __iter__(self) -> MergedScandir:
        return self

    def __next__(self):
        return next(self._it)

    def close(self) -> None:
        self._it = iter(())

    def __enter__(self) -> MergedScandir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def missing_names(tracked: dict[str, str], local: Iterable[str]) -> list[str]:
    """Tracked names absent from ``local``, sorted: they follow the workspace's own order."""
    present = set(local)
    return sorted(name for name in tracked if name not in present)
