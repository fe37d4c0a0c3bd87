"""Object sizes, for ``os.stat`` of files that are not fetched yet.

A ``.dir`` object records no sizes. A size comes from the cache if the object is whole there
(an object another process is writing may be empty for a moment), else from
one metadata request to the remote, memoized. When one file of a directory is asked for, its
siblings are asked for in the same batch, since programs usually stat a whole directory.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError
from dvc_stream.workspace import cache_objects

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc_stream.stream.fetcher import ObjectRef
    from dvc_stream.workspace.manifest import TrackedFile

logger = logging.getLogger(__name__)

BATCH_LIMIT = 1000


class SizeIndex:
    def __init__(self, jobs: int):
        self.jobs = jobs
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    def known(self, oid: str) -> int | None:
        return self._sizes.get(oid)

    def remember(self, oid: str, size: int) -> None:
        self._sizes[oid] = size

    def size(
        self,
        tracked: TrackedFile,
        siblings: list[TrackedFile],
        make_ref: Callable[[TrackedFile], ObjectRef],
    ) -> int:
        known = self._sizes.get(tracked.oid)
        if known is not None:
            return known
        with self._lock:
            if tracked.oid not in self._sizes:
                wanted = [tracked, *(s for s in siblings if s.oid != tracked.oid)]
                self._fill([make_ref(f) for f in wanted[:BATCH_LIMIT]])
        if tracked.oid not in self._sizes:
            ref = make_ref(tracked)
            raise FetchError(ref.display, ref.remote_name, f"object {ref.oid} is missing")
        return self._sizes[tracked.oid]

    def _fill(self, refs: list[ObjectRef]) -> None:
        remote_refs = []
        for ref in refs:
            if ref.oid in self._sizes:
                continue
            size = cache_objects.whole_size(ref.cache, ref.oid)
            if size is None:
                remote_refs.append(ref)
            else:
                self._sizes[ref.oid] = size
        if not remote_refs:
            return
        unique = list({ref.oid: ref for ref in remote_refs}.values())
        # NOTE: the files of one directory usually share one store, but an import can span
        # several outputs of its source, each with its own.
        by_store: dict[int, list[ObjectRef]] = {}
        for ref in unique:
            by_store.setdefault(id(ref.remote), []).append(ref)
        for refs in by_store.values():
            self._fill_from_store(refs, asked=unique[0])

    def _fill_from_store(self, refs: list[ObjectRef], asked: ObjectRef) -> None:
        odb = refs[0].remote
        paths, found = [], []
        for ref in refs:
            try:
                paths.append(odb.oid_to_path(ref.oid))
            except FileNotFoundError:
                continue
            found.append(ref)
        infos = odb.fs.info(paths, batch_size=self.jobs, return_exceptions=True)
        for ref, info in zip(found, infos, strict=True):
            if isinstance(info, FileNotFoundError):
                continue
            if isinstance(info, BaseException):
                if ref is asked:
                    raise FetchError(ref.display, ref.remote_name, f"{info}") from info
                continue
            if info.get("size") is not None:
                self._sizes[ref.oid] = int(info["size"])
