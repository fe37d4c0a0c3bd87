"""Object sizes, for ``os.stat`` of files that are not fetched yet.

A ``.dir`` object records no sizes. A size comes from the cache if the object is whole there
(an object another process is writing may be empty for a moment), else from the remote:
from listings on object stores (``remote_listing``), else one metadata request per object.
Every size learned is kept for the run. When one file of a directory is asked for, its siblings
are asked for in the same batch, since programs usually stat a whole directory.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError
from dvc_stream.stream import remote_listing
from dvc_stream.stream.remote_listing import StoreListing
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
        self._listings: dict[tuple[str, str], StoreListing] = {}

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
        """Learn the sizes of ``refs``; only the first one's failure is raised: the others are
        its siblings, asked for in passing."""
        asked = refs[0]
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
            try:
                store = ref.remote
            except FetchError:
                if ref is asked:
                    raise
                continue  # NOTE: a sibling whose remote cannot be opened: its own stat says so
            by_store.setdefault(id(store), []).append(ref)
        for refs in by_store.values():
            self._fill_from_store(refs, asked=asked)

    def _fill_from_store(self, refs: list[ObjectRef], asked: ObjectRef) -> None:
        if remote_listing.listable(refs[0].remote):
            refs = self._fill_by_listing(refs, asked)
        if refs:
            self._fill_by_metadata(refs, asked)

    def _fill_by_listing(self, refs: list[ObjectRef], asked: ObjectRef) -> list[ObjectRef]:
        """Learn sizes from listings where that takes fewer requests; return the refs left to
        ask one by one: those of prefixes not listed, and ``asked`` if no listing had it (a
        missing object gets its error from its own request)."""
        listing = self._listing(refs[0])
        if listing.refused:
            return refs
        try:
            self._list_what_pays(listing, refs, asked)
        except Exception as exc:
            # NOTE: credentials may allow reading objects but not listing the bucket.
            logger.debug("listing '%s' failed, sizes by metadata instead: %s", listing.path, exc)
            listing.refused = True
            return refs
        return [
            r
            for r in refs
            if r.oid not in self._sizes and (r is asked or not listing.covers(r.oid))
        ]

    def _list_what_pays(
        self, listing: StoreListing, refs: list[ObjectRef], asked: ObjectRef
    ) -> None:
        pending = [r for r in refs if not listing.covers(r.oid)]
        if listing.per_prefix is None and len(pending) >= remote_listing.MIN_WANTED:
            sample = asked if asked in pending else pending[0]
            self._learn(listing.sample(sample.oid))
            pending = [r for r in refs if not listing.covers(r.oid)]
        if pending and listing.per_prefix is not None:
            self._list_for(listing, pending)

    def _list_for(self, listing: StoreListing, pending: list[ObjectRef]) -> None:
        prefixes = sorted({r.oid[:2] for r in pending})
        whole_store = pending[0].hash_name == "md5"  # NOTE: a legacy store is the remote's root
        way = remote_listing.plan(len(pending), len(prefixes), listing.per_prefix, whole_store)
        if way == remote_listing.ALL:
            self._learn(listing.list_all())
        elif way == remote_listing.BY_PREFIX:
            self._learn(listing.list_prefixes(prefixes))

    def _listing(self, ref: ObjectRef) -> StoreListing:
        key = (ref.remote.fs.protocol, ref.remote.path)
        if key not in self._listings:
            self._listings[key] = StoreListing(ref.remote, self.jobs)
        return self._listings[key]

    def _learn(self, sizes: dict[str, int]) -> None:
        self._sizes.update(sizes)

    def _fill_by_metadata(self, refs: list[ObjectRef], asked: ObjectRef) -> None:
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
