"""Remote -> cache: one GET per object, deduplicated, prioritized, verified, atomic.

Every download goes through one ``Fetcher``: a priority queue served by ``jobs`` worker threads.
Demand misses come before hints, hints before background fill, and a demand request for an object
already queued promotes it. An object is downloaded to a temporary file, checked against its md5,
and only then added to the DVC cache with dvc-objects (atomic rename, read-only), so a reader
never sees a partial object and a killed process leaves only a temporary file behind.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from queue import PriorityQueue
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc_data.hashfile.db import HashFileDB

logger = logging.getLogger(__name__)

DEMAND, HINT, BACKGROUND = 0, 1, 2


@dataclass(frozen=True)
class ObjectRef:
    """One object to fetch: its id, where it lives, where it goes, and what to call it."""

    oid: str
    hash_name: str
    cache: HashFileDB = field(compare=False, repr=False)
    remote: HashFileDB = field(compare=False, repr=False)
    remote_name: str = field(compare=False)
    display: str = field(compare=False)  # the workspace path, for messages

    @property
    def cache_path(self) -> str:
        return self.cache.oid_to_path(self.oid)

    def is_cached(self) -> bool:
        return os.path.exists(self.cache_path)


@dataclass
class _Job:
    ref: ObjectRef
    priority: int
    future: Future = field(default_factory=Future)
    started: bool = False


class Fetcher:
    """Downloads objects into the cache with bounded concurrency and per-object deduplication."""

    def __init__(
        self,
        jobs: int,
        tmp_dir: str,
        retries: int = 3,
        backoff: float = 0.25,
        on_fetched: Callable[[ObjectRef, int, int], None] | None = None,
        thread_context: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self.jobs = jobs
        self.tmp_dir = tmp_dir
        self.retries = retries
        self.backoff = backoff
        self.on_fetched = on_fetched  # (ref, priority at start, size)
        self.thread_context = thread_context
        self._queue: PriorityQueue = PriorityQueue()
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._closed = False
        self._workers = [
            threading.Thread(target=self._work, name=f"dvc-stream-fetch-{i}", daemon=True)
            for i in range(jobs)
        ]
        os.makedirs(tmp_dir, exist_ok=True)
        for worker in self._workers:
            worker.start()

    def submit(self, ref: ObjectRef, priority: int = DEMAND) -> Future:
        """A future that completes when ``ref`` is in the cache (at once if it already is)."""
        with self._lock:
            job = self._jobs.get(ref.oid)
            if job is not None:
                if priority < job.priority and not job.started:
                    job.priority = priority
                    self._queue.put((priority, next(self._seq), ref.oid))
                return job.future
            if self._closed:
                raise FetchError(ref.display, ref.remote_name, "dvc stream is shutting down")
            if ref.is_cached():
                done: Future = Future()
                done.set_result(ref.cache_path)
                return done
            job = self._jobs[ref.oid] = _Job(ref, priority)
            self._queue.put((priority, next(self._seq), ref.oid))
            return job.future

    def close(self, wait: bool = True) -> None:
        """Stop taking work; cancel what has not started; stop the workers."""
        with self._lock:
            self._closed = True
            for job in list(self._jobs.values()):
                if not job.started:
                    self._jobs.pop(job.ref.oid)
                    job.future.set_exception(
                        FetchError(job.ref.display, job.ref.remote_name, "cancelled at shutdown")
                    )
        for _ in self._workers:
            self._queue.put((-1, next(self._seq), None))
        if wait:
            for worker in self._workers:
                worker.join(timeout=30)

    def _work(self) -> None:
        with self.thread_context():
            self._serve_queue()

    def _serve_queue(self) -> None:
        while True:
            _, _, oid = self._queue.get()
            if oid is None:
                return
            with self._lock:
                job = self._jobs.get(oid)
                if job is None or job.started:
                    continue
                job.started = True
            try:
                size = self._fetch(job.ref)
            except BaseException as exc:
                job.future.set_exception(exc)
            else:
                if self.on_fetched is not None:
                    self.on_fetched(job.ref, job.priority, size)
                job.future.set_result(job.ref.cache_path)
            finally:
                with self._lock:
                    self._jobs.pop(oid, None)

    def _fetch(self, ref: ObjectRef) -> int:
        if ref.is_cached():
            return 0
        tmp = os.path.join(self.tmp_dir, f"{ref.oid}.{os.getpid()}.{uuid.uuid4().hex}")
        try:
            self._download(ref, tmp)
            size = os.path.getsize(tmp)
            self._verify(ref, tmp)
            self._add_to_cache(ref, tmp)
            return size
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    def _download(self, ref: ObjectRef, tmp: str) -> None:
        remote_path = ref.remote.oid_to_path(ref.oid)
        for attempt in range(1, self.retries + 1):
            try:
                ref.remote.fs.get_file(remote_path, tmp)
                return
            except FileNotFoundError:
                raise FetchError(
                    ref.display, ref.remote_name, f"object {ref.oid} is missing on the remote"
                ) from None
            except Exception as exc:
                if attempt == self.retries:
                    raise FetchError(
                        ref.display, ref.remote_name, f"{type(exc).__name__}: {exc}"
                    ) from exc
                logger.debug("retrying %s after %r (attempt %d)", ref.display, exc, attempt)
                time.sleep(self.backoff * 2 ** (attempt - 1))

    def _verify(self, ref: ObjectRef, tmp: str) -> None:
        from dvc_data.hashfile.hash import file_md5

        actual = file_md5(tmp, name=ref.hash_name)
        if actual != ref.oid:
            raise FetchError(
                ref.display,
                ref.remote_name,
                f"object {ref.oid} is corrupted on the remote (its content hashes to {actual})",
            )

    def _add_to_cache(self, ref: ObjectRef, tmp: str) -> None:
        from dvc_objects.fs.local import localfs

        ref.cache.add(tmp, localfs, ref.oid, hardlink=True)
