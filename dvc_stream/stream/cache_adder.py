"""Finished downloads -> DVC cache: each checked against its md5, then added in batches.

Adding objects one by one costs a state-database transaction and a failed reflink attempt per
object, and spreading that work over many threads makes them fight for the GIL with the event
loop that runs the downloads (a thread per download made 400 futex calls per 8 KB object). One
thread takes whatever has finished since its last pass and adds it with one ``HashFileDB.add``
call, as ``dvc pull`` does. The fetcher keeps a second adder for the downloads a reader is
blocked on, so that they never queue behind a batch of prefetches.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc_stream.stream.fetcher import ObjectRef

logger = logging.getLogger(__name__)

MAX_BATCH = 256


@dataclass
class Download:
    """A finished (or failed) download of ``ref`` into the temporary file ``tmp``."""

    ref: ObjectRef
    tmp: str
    error: BaseException | None
    done: Callable[[BaseException | None, int], None]  # (error, size)


class CacheAdder:
    def __init__(
        self,
        thread_context: Callable[[], AbstractContextManager] = nullcontext,
        name: str = "dvc-stream-cache",
    ):
        self.thread_context = thread_context
        self._queue: queue.SimpleQueue[Download | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, download: Download) -> None:
        self._queue.put(download)

    def close(self, timeout: float | None = None) -> None:
        """Add what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        with self.thread_context():
            while (batch := self._next_batch()) is not None:
                self._add(batch)

    def _next_batch(self) -> list[Download] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _add(self, batch: list[Download]) -> None:
        by_cache: dict[int, list[tuple[Download, int]]] = defaultdict(list)
        for download in batch:
            try:
                size = _checked_size(download)
            except BaseException as exc:
                _finish(download, exc, 0)
            else:
                by_cache[id(download.ref.cache)].append((download, size))
        for items in by_cache.values():
            self._add_to_cache(items)

    def _add_to_cache(self, items: list[tuple[Download, int]]) -> None:
        from dvc_objects.fs.local import localfs

        cache = items[0][0].ref.cache
        try:
            cache.add(
                [d.tmp for d, _ in items], localfs, [d.ref.oid for d, _ in items], hardlink=True
            )
        except Exception as exc:
            logger.debug("adding %d objects to the cache failed: %s", len(items), exc)
            for download, _ in items:
                error = FetchError(download.ref.display, download.ref.remote_name, str(exc))
                _finish(download, error, 0)
            return
        for download, size in items:
            _finish(download, None, size)


def _checked_size(download: Download) -> int:
    from dvc_data.hashfile.hash import file_md5

    if download.error is not None:
        raise download.error
    ref = download.ref
    actual = file_md5(download.tmp, name=ref.hash_name)
    if actual != ref.oid:
        raise FetchError(
            ref.display,
            ref.remote_name,
            f"object {ref.oid} is corrupted on the remote (its content hashes to {actual})",
        )
    return os.path.getsize(download.tmp)


def _finish(download: Download, error: BaseException | None, size: int) -> None:
    try:
        download.done(error, size)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(download.tmp)
