"""Background fill: fetch what the program is about to read, in the order it will likely read it.

Sources, most urgent first: explicit hints (``dvc_stream.prefetch``, a DataLoader's sampler
order), then background fill as the policy allows: whole directories the program listed or read
from (``listed``, ``touched``), or the readahead that follows its reads (``auto``, see
``readahead.py``). Each connection's hints are fetched in the order they came; the hints of
different connections (the ranks of a distributed job, say) take turns, so that none waits for
another's whole epoch. A feeder thread keeps a bounded window of background jobs in the fetcher's
queue, so demand misses always jump ahead, and stops once the byte budget is spent. Objects
already cached are only placed.

The background window is bounded twice: by the number of downloads, which matters for small files
(each one mostly waits out a round trip), and by their bytes, which matters for large ones (each
byte in flight ahead of a demand miss is one the miss waits for on a shared link or server).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

from dvc_stream.stream.fetcher import BACKGROUND, HINT
from dvc_stream.stream.readahead import Readahead

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable, Iterator

    from dvc_stream.stream.broker import Broker
    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput

logger = logging.getLogger(__name__)

FOLLOWS_LISTINGS = {"listed"}
FILLS_READ_DIRS = {"touched"}
READS_AHEAD = {"auto"}
FOLLOWS_SAMPLERS = {"sampler", "auto"}
# NOTE: background bytes in flight allowed per `-j` job: about 1.7 MiB at the default -j 11 of a
# 20 ms remote, close to one round trip of a gigabit link. Unhinted 512 KB files at 20 ms (2-core
# moto): 4 in flight gave the epoch 7.6-8.4 s against 7.9-8.7 s for 9 (the count window alone),
# in two full benchmark runs and two A/B runs; 8 KB files are not held back (9 x 8 KB in flight).
BACKGROUND_BYTES_PER_JOB = 160 * 1024
MIN_WINDOW = 2


class Prefetcher:
    def __init__(self, broker: Broker, policy: str, budget: int | None):
        self.broker = broker
        self.policy = policy
        self.budget = budget
        # NOTE: background jobs never fill every worker: a quarter stays free for demand misses,
        # which would otherwise queue behind prefetches at the server, if not in our queue.
        self.background_window = max(broker.jobs - max(2, broker.jobs // 4), MIN_WINDOW)
        self.background_bytes = broker.jobs * BACKGROUND_BYTES_PER_JOB
        self._hints: dict[Hashable, deque[TrackedFile]] = {}  # by connection, in turn order
        self._background: deque[Iterator[TrackedFile]] = deque()
        self._readahead = Readahead() if policy in READS_AHEAD else None
        self._seen_dirs: set[tuple[str, str]] = set()
        self._inflight = 0
        self._inflight_bytes = 0  # as estimated when each download started
        self._finished_any = False
        self._finished_files = 0  # downloads that brought bytes, for the size estimate
        self._spent = 0  # bytes those downloads brought
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._feed, name="dvc-stream-prefetch", daemon=True)
        self._thread.start()

    def listed(self, output: TrackedOutput, reldir: str) -> None:
        if self.policy in FOLLOWS_LISTINGS:
            self._add_dir(output, reldir)

    def touched(self, tracked: TrackedFile) -> None:
        """The program opened ``tracked``, which was not in the workspace."""
        if self.policy in FILLS_READ_DIRS and tracked.output.isdir:
            self._add_dir(tracked.output, tracked.reldir)
        elif self._readahead is not None:
            with self._cond:
                if self._readahead.read(tracked):
                    self._cond.notify()

    @property
    def follows_samplers(self) -> bool:
        """Whether the hooks should hint a PyTorch DataLoader's read order (``read_order``)."""
        return self.policy in FOLLOWS_SAMPLERS

    def hint(self, files: Iterable[TrackedFile], sender: Hashable = None) -> None:
        """Queue ``files`` after what ``sender`` (a client connection) hinted before."""
        files = list(files)
        with self._cond:
            if not files or self._closed:
                return
            self._hints.setdefault(sender, deque()).extend(files)
            if self._readahead is not None:
                self._readahead.hinted(files)
            self._cond.notify()

    def _add_dir(self, output: TrackedOutput, reldir: str) -> None:
        key = (output.path, reldir)
        with self._cond:
            if key in self._seen_dirs or self._closed:
                return
            self._seen_dirs.add(key)
            self._background.append(output.files_in(reldir))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._hints.clear()
            self._background.clear()
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _may_start(self) -> bool:
        """Whether another prefetch may start: all of ``jobs`` while a hint is being followed.

        A hint is the program's own read order, so its files are the ones demand misses would
        ask for next: they need no slots kept free, and a shuffled epoch of small files is
        bound by how many requests are in flight. Background fill stays within its window of
        downloads and of bytes (a size not known yet is estimated from the files downloaded so
        far), and runs no more than two until the first prefetch has finished.
        """
        if self.budget is not None and self._spent >= self.budget:
            return False
        if self._hints:
            return self._inflight < self.broker.jobs
        if self._inflight < MIN_WINDOW:
            return True
        return (
            self._inflight < self.background_window
            and self._finished_any
            and self._inflight_bytes < self.background_bytes
        )

    def _estimate(self, tracked: TrackedFile) -> int:
        """The size of ``tracked``, as known or as the mean of the files downloaded so far."""
        known = tracked.size if tracked.size is not None else self.broker.sizes.known(tracked.oid)
        if known is not None:
            return known
        return self._spent // max(self._finished_files, 1)

    def _next(self) -> tuple[int, TrackedFile, int] | None:
        with self._cond:
            while not self._closed:
                if self._may_start():
                    item = self._take()
                    if item is not None:
                        priority, tracked = item
                        estimate = self._estimate(tracked)
                        self._inflight += 1
                        self._inflight_bytes += estimate
                        return priority, tracked, estimate
                self._cond.wait()
            return None

    def _take(self) -> tuple[int, TrackedFile] | None:
        """The next file: one from the hints of each connection in turn, then background fill."""
        if self._hints:
            sender, queue = next(iter(self._hints.items()))
            del self._hints[sender]
            tracked = queue.popleft()
            if queue:
                self._hints[sender] = queue  # its turn comes again after the others'
            return HINT, tracked
        while self._background:
            tracked = next(self._background[0], None)
            if tracked is not None:
                return BACKGROUND, tracked
            self._background.popleft()
        if self._readahead is None:
            return None
        tracked = self._readahead.next_file(self.broker.present)
        return None if tracked is None else (BACKGROUND, tracked)

    def _feed(self) -> None:
        with self.broker.thread_context():
            self._feed_fetcher()

    def _feed_fetcher(self) -> None:
        while (item := self._next()) is not None:
            priority, tracked, estimate = item
            try:
                self._start(priority, tracked, estimate)
            except Exception as exc:
                logger.debug("prefetch of '%s' failed: %s", tracked.path, exc)
                self._finished(estimate, 0)

    def _start(self, priority: int, tracked: TrackedFile, estimate: int) -> None:
        if self.broker.present(tracked.path):
            self._finished(estimate, 0)
            return
        ref = self.broker.ref(tracked)
        future = self.broker.fetcher.submit(ref, priority)

        def done(fut) -> None:
            size = 0
            if fut.exception() is None:
                self.broker.place_fetched(tracked)
                size = self.broker.sizes.known(ref.oid) or 0
            self._finished(estimate, size)

        future.add_done_callback(done)

    def _finished(self, estimate: int, size: int) -> None:
        with self._cond:
            self._inflight -= 1
            self._inflight_bytes -= estimate
            self._spent += size
            self._finished_any = True
            if size:
                self._finished_files += 1
            self._cond.notify()
