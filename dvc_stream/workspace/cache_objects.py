"""Objects of a DVC cache that several processes share: each is whole or absent, never between.

DVC's ``HashFileDB.add`` writes an object at its final path: its first link attempt, a reflink,
creates that path, finds that the filesystem cannot clone (ext4, for one) and removes it again.
For that moment the object's path exists and is empty, and when another process has just finished
the same object, the attempt truncates it (for root, whom its read-only mode does not stop). Any
process that took "the path exists" for "the object is there" (another ``dvc stream`` run, a
notebook, a clone on the same cache) could place that empty file and read it.

So an object is published here read-only under a temporary name beside its path, then renamed
onto it, and a reader counts an object as present only when it is whole: read-only and not empty
(DVC protects an object once it is whole and checked), or else hashing to its oid.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc_data.hashfile.db import HashFileDB


class IncompleteObject(OSError):
    """A cache object is absent or not whole: another process removed or is writing it."""

    def __init__(self, path: str):
        super().__init__(errno.ENOENT, "the cache object is absent or not whole", path)


def whole_size(cache: HashFileDB, oid: str) -> int | None:
    """The size of the object ``oid`` if the cache holds all of its bytes, else None."""
    path = cache.oid_to_path(oid)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if _sealed(st) else _hashed_size(cache, path, oid)


def is_sealed(cache: HashFileDB, oid: str) -> bool:
    """Whether ``oid`` is in the cache as published: ``whole_size`` without ever hashing."""
    try:
        return _sealed(os.stat(cache.oid_to_path(oid)))
    except OSError:
        return False


def publish(cache: HashFileDB, tmp: str, oid: str) -> None:
    """Move ``tmp``, whose bytes hash to ``oid``, into the cache, unless it holds ``oid`` whole."""
    from dvc_objects.fs.utils import move

    if whole_size(cache, oid) is not None:
        return
    path = cache.oid_to_path(oid)
    cache.makedirs(os.path.dirname(path))
    cache.protect(tmp)
    move(tmp, path)  # NOTE: to a temporary name beside `path` first, then renamed onto it


def _sealed(st: os.stat_result) -> bool:
    # NOTE: an object being written in place is writable, and one truncated in place is empty.
    return bool(st.st_size) and not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def _hashed_size(cache: HashFileDB, path: str, oid: str) -> int | None:
    """The size of ``path`` if its bytes hash to ``oid``; it is then protected, as
    ``HashFileDB.check`` does."""
    from dvc_data.hashfile.hash import fobj_md5

    try:
        with open(path, "rb") as fobj:  # NOTE: size and bytes of one inode, even if replaced
            size = os.fstat(fobj.fileno()).st_size
            if fobj_md5(fobj, name=cache.hash_name) != oid:
                return None
    except OSError:
        return None
    cache.protect(path)
    return size
