"""Finished downloads -> DVC cache: each checked against its md5, then published whole.

Checking an object costs a hash and adding it a few system calls; spreading that work over many
threads makes them fight for the GIL with the event loop that runs the downloads (a thread per
download made 400 futex calls per 8 KB object). One thread takes the finished downloads in turn.
The fetcher keeps a second adder for the downloads a reader is blocked on, so that they never
queue behind the prefetches.

An object goes into the cache through ``cache_objects.publish``, never through
``HashFileDB.add``, which writes at the object's final path and so shows other processes an
empty object for a moment (see ``cache_objects``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError
from dvc_stream.workspace import cache_objects

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc_stream.stream.fetcher import ObjectRef

logger = logging.getLogger(__name__)


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
            while (download := self._queue.get()) is not None:
                self._add(download)

    def _add(self, download: Download) -> None:
        try:
            size = _checked_size(download)
        except BaseException as exc:
            _finish(download, exc, 0)
            return
        ref = download.ref
        try:
            cache_objects.publish(ref.cache, download.tmp, ref.oid)
        except Exception as exc:
            logger.debug("adding %s to the cache failed: %s", ref.oid, exc)
            _finish(download, FetchError(ref.display, ref.remote_name, str(exc)), 0)
            return
        _finish(download, None, size)


def _checked_size(download: Download) -> int:
    from dvc_data.hashfile.hash import file_md5

    if download.error is not None:
        raise download.error
    ref = download.ref
    actual = file_md5(download.tmp, name=ref.hash_name)
    if actual != ref.oid:
        # NOTE: a store read by path (a URL) may say better why the bytes differ
        differs = getattr(ref.remote, "mismatch", None) or "is corrupted on the remote"
        raise FetchError(
            ref.display,
            ref.remote_name,
            f"object {ref.oid} {differs} (its content hashes to {actual})",
        )
    return os.path.getsize(download.tmp)


def _finish(download: Download, error: BaseException | None, size: int) -> None:
    try:
        download.done(error, size)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(download.tmp)
