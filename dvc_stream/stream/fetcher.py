"""Remote -> cache: one GET per object, deduplicated, prioritized, verified, atomic.

Every download goes through one ``Fetcher``: a priority queue from which at most ``jobs``
downloads run at a time. Demand misses come before hints, hints before background fill,
and a demand request for an object already queued promotes it. An object is downloaded to a
temporary file, checked against its md5, and only then published in the DVC cache, read-only and
by a rename (``cache_objects``), so a reader never sees a partial object and a killed process
leaves only a temporary file behind, which the next run removes. An object another process is
writing does not count as cached: it is fetched again.

Downloads from an asynchronous filesystem (s3fs, gcsfs, adlfs...) run as coroutines on its event
loop, as ``dvc pull`` runs them; others run on a thread pool. Finished downloads are checked and
added to the cache in batches (``cache_adder.py``); demand misses by a thread of their own, so that
a blocked reader never waits behind a batch of prefetches being hashed.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import os
import threading
import time
from concurrent.futures import CancelledError, Future, InvalidStateError, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dvc_stream.errors import FetchError
from dvc_stream.stream import stall
from dvc_stream.stream.cache_adder import CacheAdder, Download
from dvc_stream.stream.remotes import RemoteUnreachable
from dvc_stream.workspace import cache_objects, scratch

if TYPE_CHECKING:
    from collections.abc import Callable

    from dvc_data.hashfile.db import HashFileDB

logger = logging.getLogger(__name__)

DEMAND, HINT, BACKGROUND = 0, 1, 2
NO_REMOTE = "it is not in the cache and no remote is set"
UNREACHABLE = "it is not in the cache and the remote could not be reached"


@dataclass(frozen=True)
class ObjectRef:
    """One object to fetch: its id, where it goes, where it lives, and what to call it.

    Where it lives is opened when it is first needed (a download, a size), not before: an object
    already in the cache is served without its remote, which may be unset or out of reach (a
    project with no remote, a laptop offline), as ``dvc checkout`` serves it.
    """

    oid: str
    hash_name: str
    cache: HashFileDB = field(compare=False, repr=False)
    open_remote: Callable[[], HashFileDB] = field(compare=False, repr=False)
    remote_name: str = field(compare=False)
    display: str = field(compare=False)  # the workspace path, for messages

    @functools.cached_property
    def remote(self) -> HashFileDB:
        """The store the object is read from; a FetchError naming the file if it cannot be
        opened."""
        from dvc.config import NoRemoteError

        try:
            return self.open_remote()
        except FetchError:
            raise
        except NoRemoteError:
            # NOTE: DVC's own text spans lines, on how to add one.
            raise FetchError(self.display, None, NO_REMOTE) from None
        except RemoteUnreachable:
            # NOTE: why was said once, when it was found
            raise FetchError(self.display, self.remote_name, UNREACHABLE) from None
        except Exception as exc:
            raise FetchError(self.display, self.remote_name, str(exc) or repr(exc)) from exc

    @property
    def cache_path(self) -> str:
        return self.cache.oid_to_path(self.oid)

    def is_cached(self) -> bool:
        return cache_objects.whole_size(self.cache, self.oid) is not None


@dataclass
class _Job:
    ref: ObjectRef
    priority: int
    future: Future = field(default_factory=Future)
    started: bool = False
    awaited: bool = False  # a demand miss waits for it, even if it started as a prefetch
    download: Future | None = None
    task: asyncio.Task | None = None  # the download's coroutine, on an async filesystem
    loop: asyncio.AbstractEventLoop | None = None


class Fetcher:
    """Downloads objects into the cache with bounded concurrency and per-object deduplication."""

    def __init__(
        self,
        jobs: int,
        tmp_dir: str,
        retries: int = 3,
        backoff: float = 0.25,
        on_fetched: Callable[[ObjectRef, int, int], None] | None = None,
        on_failed: Callable[[ObjectRef, BaseException], None] | None = None,
        thread_context: Callable[[], AbstractContextManager] = nullcontext,
    ):
        self.jobs = jobs
        self.tmp_dir = tmp_dir
        self.retries = retries
        self.backoff = backoff
        self.on_fetched = on_fetched  # (ref, priority at start, size)
        self.on_failed = on_failed  # (ref, the error its last attempt raised)
        self.thread_context = thread_context
        self.stall_timeout = stall.stall_timeout()
        self._heap: list[tuple[int, int, str]] = []
        self._jobs: dict[str, _Job] = {}
        self._running = 0
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._closed = False
        self._threads = ThreadPoolExecutor(jobs, thread_name_prefix="dvc-stream-download")
        self._adder = CacheAdder(thread_context)
        self._demand_adder = CacheAdder(thread_context, name="dvc-stream-cache-demand")
        scratch.prepare(tmp_dir)

    def submit(self, ref: ObjectRef, priority: int = DEMAND) -> Future:
        """A future that completes when ``ref`` is in the cache (at once if it already is)."""
        with self._lock:
            job = self._queued(ref, priority, create=False)
        # NOTE: outside the lock: telling whether an object is whole may mean hashing it.
        if job is None and not ref.is_cached():
            with self._lock:
                job = self._queued(ref, priority, create=True)
        if job is None:
            done: Future = Future()
            done.set_result(ref.cache_path)
            return done
        self._start_ready()
        return job.future

    def _queued(self, ref: ObjectRef, priority: int, create: bool) -> _Job | None:
        """The job for ``ref``, promoted to ``priority``; a new one if ``create``. Locked."""
        job = self._jobs.get(ref.oid)
        if job is None:
            if self._closed:
                raise FetchError(ref.display, ref.remote_name, "dvc stream is shutting down")
            # NOTE: a job for it may have ended since the caller looked in the cache.
            if not create or cache_objects.is_sealed(ref.cache, ref.oid):
                return None
            self._jobs[ref.oid] = job = _Job(ref, priority)
            heapq.heappush(self._heap, (priority, next(self._seq), ref.oid))
        elif priority < job.priority and not job.started:
            job.priority = priority
            heapq.heappush(self._heap, (priority, next(self._seq), ref.oid))
        if priority == DEMAND:
            job.awaited = True
        return job

    def close(self, wait: bool = True, timeout: float = 10) -> None:
        """Stop taking work, cancel what is queued or in flight, and wait for the clean-up."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            _cancel(job)
            _fail(job, FetchError(job.ref.display, job.ref.remote_name, "cancelled at shutdown"))
        if wait:
            wait_for([job.download for job in jobs if job.download is not None], timeout)
        self._threads.shutdown(wait=wait, cancel_futures=True)
        for adder in (self._demand_adder, self._adder):
            adder.close(timeout if wait else 0)

    # -- scheduling ----------------------------------------------------------------------------

    def _start_ready(self) -> None:
        """Start queued jobs, most urgent first, while fewer than ``jobs`` are running.

        Called on every submission and every finished download, in whatever thread that
        happens: no scheduler thread stands between a demand miss and its request.
        """
        while (job := self._take()) is not None:
            self._start(job)

    def _take(self) -> _Job | None:
        with self._lock:
            while self._heap and self._running < self.jobs and not self._closed:
                _, _, oid = heapq.heappop(self._heap)
                job = self._jobs.get(oid)
                if job is None or job.started:
                    continue  # done already, or a stale entry left by a promotion
                job.started = True
                self._running += 1
                return job
            return None

    def _start(self, job: _Job) -> None:
        ref = job.ref
        tmp = scratch.new_name(self.tmp_dir, f"{ref.oid}.")
        try:
            download = self._download(job, tmp)
        except BaseException as exc:  # its remote cannot be opened, or we are closing
            download = Future()
            download.set_exception(exc)
        job.download = download
        download.add_done_callback(lambda fut: self._downloaded(job, tmp, fut))

    def _downloaded(self, job: _Job, tmp: str, download: Future) -> None:
        with self._lock:
            self._running -= 1
        self._start_ready()
        try:
            error = download.exception()
        except CancelledError as exc:
            error = exc
        adder = self._demand_adder if job.awaited else self._adder
        adder.put(Download(job.ref, tmp, error, functools.partial(self._done, job)))

    def _done(self, job: _Job, error: BaseException | None, size: int) -> None:
        ref = job.ref
        try:
            if error is not None:
                try:
                    if self.on_failed is not None:
                        self.on_failed(ref, error)
                finally:
                    _fail(job, _as_fetch_error(ref, error))
                return
            if self.on_fetched is not None:
                self.on_fetched(ref, job.priority, size)
            with suppress(InvalidStateError):  # failed by close() meanwhile
                job.future.set_result(ref.cache_path)
        finally:
            with self._lock:
                if self._jobs.get(ref.oid) is job:
                    del self._jobs[ref.oid]

    # -- one object ----------------------------------------------------------------------------

    def _download(self, job: _Job, tmp: str) -> Future:
        """Start downloading ``job.ref`` to ``tmp``; the future completes when it is there."""
        ref = job.ref
        fs = ref.remote.fs.fs
        rpath = ref.remote.oid_to_path(ref.oid)
        if getattr(fs, "async_impl", False) and getattr(fs, "loop", None) is not None:
            job.loop = fs.loop
            return asyncio.run_coroutine_threadsafe(self._get_async(fs, job, rpath, tmp), fs.loop)
        return self._threads.submit(self._get_sync, job.ref, rpath, tmp)

    async def _get_async(self, fs, job: _Job, rpath: str, tmp: str) -> None:
        job.task = asyncio.current_task()
        try:
            if self._closed:
                raise asyncio.CancelledError
            for attempt in range(1, self.retries + 1):
                try:
                    await stall.get_file(fs, rpath, tmp, self.stall_timeout)
                    return
                except Exception as exc:
                    delay = self._retry_delay(job.ref, exc, attempt)
                await asyncio.sleep(delay)
        except BaseException:
            _remove(tmp)  # here, after the last write: the finisher may run before we stop
            raise

    def _get_sync(self, ref: ObjectRef, rpath: str, tmp: str) -> None:
        with self.thread_context():
            for attempt in range(1, self.retries + 1):
                try:
                    ref.remote.fs.get_file(rpath, tmp)
                    return
                except Exception as exc:
                    delay = self._retry_delay(ref, exc, attempt)
                time.sleep(delay)

    def _retry_delay(self, ref: ObjectRef, exc: Exception, attempt: int) -> float:
        """How long to wait before the next attempt; raises when there is none."""
        if isinstance(exc, FileNotFoundError):
            raise FetchError(
                ref.display, ref.remote_name, f"object {ref.oid} is missing on the remote"
            ) from None
        if attempt == self.retries:
            raise FetchError(ref.display, ref.remote_name, f"{type(exc).__name__}: {exc}") from exc
        logger.debug("retrying %s after %r (attempt %d)", ref.display, exc, attempt)
        return self.backoff * 2 ** (attempt - 1)


def _cancel(job: _Job) -> None:
    if job.task is not None and job.loop is not None:
        with suppress(RuntimeError):  # the loop is closed
            job.loop.call_soon_threadsafe(job.task.cancel)
    elif job.download is not None:
        job.download.cancel()  # a threaded download that has not started


def _fail(job: _Job, exc: BaseException) -> None:
    with suppress(InvalidStateError):  # already resolved
        job.future.set_exception(exc)


def _as_fetch_error(ref: ObjectRef, exc: BaseException) -> BaseException:
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, (asyncio.CancelledError, CancelledError)):
        return FetchError(ref.display, ref.remote_name, "cancelled at shutdown")
    if isinstance(exc, Exception):
        return FetchError(ref.display, ref.remote_name, f"{type(exc).__name__}: {exc}")
    return exc


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
