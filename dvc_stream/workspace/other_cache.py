"""DVC 3's other md5 cache: ``files/md5`` holds the objects of the outputs DVC 3 wrote (``md5``),
the cache's root those of the outputs DVC 2 wrote (``md5-dos2unix``). A file placed for a version
one of them wrote is in the cache, read after a switch to a version the other wrote.

Asking costs a hash of the file under the other name, so it is asked only where it can matter: for
a file whose bytes are in no object of its output's own cache (the caller's rule), and only when
the other cache holds objects at all (a project DVC 2 never wrote has none at the cache's root).
DVC's state database keeps one hash per path, the one of its output's own name, which
``dvc status`` reads too: recording the other name's there would displace it and have both
hashed again at every start. The other name's md5 is kept in a state database of its own beside
DVC's, by DVC's own rule (reused while the file's inode, mtime and size are those recorded), so
a file kept as an unsaved change is hashed once, not at every start.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc.repo import Repo
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.state import StateBase

logger = logging.getLogger(__name__)

STATE_DIR = "stream-other-md5"  # in DVC's site cache directory, beside its state database
_OTHER = {"md5": "legacy", "md5-dos2unix": "local"}  # hash name -> the other cache
_HEX = frozenset("0123456789abcdef")


class OtherCache:
    """Looks files up in the other md5 cache; its state database is opened on first use and
    closed by ``close()``."""

    def __init__(self, repo: Repo):
        self._repo = repo
        self._state: StateBase | None = None
        self._stocked: dict[str, bool] = {}  # cache path -> it holds objects

    def of(self, hash_name: str) -> HashFileDB | None:
        """The other md5 cache of outputs hashed with ``hash_name``; None if there is none or
        it holds no object."""
        other = _OTHER.get(hash_name)
        cache = getattr(self._repo.cache, other, None) if other else None
        if cache is None:
            return None
        if cache.path not in self._stocked:
            self._stocked[cache.path] = _holds_objects(cache.path)
        return cache if self._stocked[cache.path] else None

    def holds(self, cache: HashFileDB | None, path: str) -> bool:
        """Whether the bytes of ``path`` are an object of ``cache`` (from ``of()``)."""
        from dvc_data.fsutils import _localfs_info
        from dvc_data.hashfile.hash import hash_file
        from dvc_objects.fs.local import localfs

        if cache is None:
            return False
        try:
            info = _localfs_info(path)  # NOTE: as DVC's own build reads it
            _meta, hash_info = hash_file(
                path, localfs, cache.hash_name, state=self._opened(), info=info
            )
        except OSError as exc:
            logger.debug("could not hash '%s': %s", path, exc)
            return False
        return cache.exists(hash_info.value)

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    def _opened(self) -> StateBase:
        from dvc_data.hashfile.state import State, StateNoop

        if self._state is None:
            directory = os.path.join(self._repo.site_cache_dir, STATE_DIR)
            try:
                self._state = State(self._repo.root_dir, directory)
            except (OSError, sqlite3.Error) as exc:
                logger.debug("could not open '%s', hashing without it: %s", directory, exc)
                self._state = StateNoop()
        return self._state


def _holds_objects(path: str) -> bool:
    """Whether the cache at ``path`` has an object directory (``ab/``); the root of DVC 3's
    cache also holds ``files/``, ``fs/`` and ``runs/``."""
    try:
        with os.scandir(path) as entries:
            return any(
                len(e.name) == 2 and _HEX.issuperset(e.name) and e.is_dir() for e in entries
            )
    except FileNotFoundError:
        return False
    except OSError:
        return True  # NOTE: cannot tell: ask each object, as before
