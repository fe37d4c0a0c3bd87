"""Cache -> workspace, as ``dvc checkout`` would place a file, without ever clobbering one.

The file is linked or copied from the cache (``cache.type``) to a hidden temporary name in its
directory, then hard-linked to its real name, which fails instead of overwriting if the program
created that file meanwhile: the local copy always wins. Placed files are recorded in DVC's state
in batches, so ``dvc status`` does not rehash them.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from copy import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dvc.repo import Repo

    from dvc_stream.manifest import TrackedFile

logger = logging.getLogger(__name__)

STATE_BATCH = 512


class Placer:
    def __init__(self, repo: Repo):
        self._state = repo.state
        self._pending: list[tuple[str, object]] = []
        self._lock = threading.Lock()

    def place(self, tracked: TrackedFile) -> bool:
        """Put ``tracked`` in the workspace from the cache; False if something is already there."""
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_objects.fs import generic
        from dvc_objects.fs.local import localfs

        dest = tracked.path
        if os.path.lexists(dest):
            return False
        cache = tracked.output.out.cache
        parent, name = os.path.split(dest)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.dvc-stream-tmp")
        try:
            generic.transfer(
                cache.fs,
                cache.oid_to_path(tracked.oid),
                localfs,
                tmp,
                links=copy(cache.cache_types),
            )
            if tracked.isexec:
                cache.set_exec(tmp)
            try:
                os.link(tmp, dest, follow_symlinks=False)
            except FileExistsError:
                return False
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        self._remember(dest, HashInfo(cache.hash_name, tracked.oid))
        return True

    def _remember(self, path: str, hash_info) -> None:
        with self._lock:
            self._pending.append((path, hash_info))
            if len(self._pending) >= STATE_BATCH:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        from dvc_objects.fs.local import localfs

        batch, self._pending = self._pending, []
        items = []
        for path, hash_info in batch:
            try:
                items.append((path, hash_info, localfs.info(path)))
            except FileNotFoundError:
                continue
        if items:
            self._state.save_many(items, localfs)
