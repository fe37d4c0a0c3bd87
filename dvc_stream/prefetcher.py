"""Background fill: fetch what the program is about to read, in the order it will likely read it.

Sources, most urgent first: explicit hints (``dvc_stream.prefetch``), then the files of each
directory the program listed or read from, in listing order, as the policy allows. Each
connection's hints are fetched in the order they came; the hints of different connections (the
ranks of a distributed job, say) take turns, so that none waits for another's whole epoch. A
feeder thread keeps a bounded window of background jobs in the fetcher's queue, so demand misses
always jump ahead, and stops once the byte budget is spent. Objects already cached are only placed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING

from dvc_stream.fetcher import BACKGROUND, HINT

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable, Iterator

    from dvc_stream.broker import Broker
    from dvc_stream.manifest import TrackedFile, TrackedOutput

logger = logging.getLogger(__name__)

FOLLOWS_LISTINGS = {"listed", "auto"}
FOLLOWS_READS = {"touched", "auto"}
FOLLOWS_SAMPLERS = {"sampler", "auto"}


class Prefetcher:
    def __init__(self, broker: Broker, policy: str, budget: int | None):
        self.broker = broker
        self.policy = policy
        self.budget = budget
        # NOTE: background jobs never fill every worker: a quarter stays free for demand misses,
        # which would otherwise queue behind prefetches at the server, if not in our queue.
        self.background_window = max(broker.jobs - max(2, broker.jobs // 4), 2)
        self._hints: dict[Hashable, deque[TrackedFile]] = {}  # by connection, in turn order
        self._background: deque[Iterator[TrackedFile]] = deque()
        self._seen_dirs: set[tuple[str, str]] = set()
        self._inflight = 0
        self._spent = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._feed, name="dvc-stream-prefetch", daemon=True)
        self._thread.start()

    def listed(self, output: TrackedOutput, reldir: str) -> None:
        if self.policy in FOLLOWS_LISTINGS:
            self._add_dir(output, reldir)

    def touched(self, tracked: TrackedFile) -> None:
        if self.policy in FOLLOWS_READS and tracked.output.isdir:
            self._add_dir(tracked.output, tracked.reldir)

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

    def _in_flight_limit(self) -> int:
        """How many prefetches may be in flight: all of ``jobs`` while a hint is being followed.

        A hint is the program's own read order, so its files are the ones demand misses would
        ask for next: they need no slots kept free, and a shuffled epoch of small files is
        bound by how many requests are in flight.
        """
        return self.broker.jobs if self._hints else self.background_window

    def _budget_left(self) -> bool:
        return self.budget is None or self._spent < self.budget

    def _next(self) -> tuple[int, TrackedFile] | None:
        with self._cond:
            while not self._closed:
                if self._inflight < self._in_flight_limit() and self._budget_left():
                    item = self._take()
                    if item is not None:
                        self._inflight += 1
                        return item
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
        return None

    def _feed(self) -> None:
        with self.broker.thread_context():
            self._feed_fetcher()

    def _feed_fetcher(self) -> None:
        while (item := self._next()) is not None:
            priority, tracked = item
            try:
                self._start(priority, tracked)
            except Exception as exc:
                logger.debug("prefetch of '%s' failed: %s", tracked.path, exc)
                self._finished(0)

    def _start(self, priority: int, tracked: TrackedFile) -> None:
        if os.path.lexists(tracked.path):
            self._finished(0)
            return
        ref = self.broker.ref(tracked)
        future = self.broker.fetcher.submit(ref, priority)

        def done(fut) -> None:
            size = 0
            if fut.exception() is None:
                self.broker.place_fetched(tracked)
                size = self.broker.sizes.known(ref.oid) or 0
            self._finished(size)

        future.add_done_callback(done)

    def _finished(self, size: int) -> None:
        with self._cond:
            self._inflight -= 1
            self._spent += size
            self._cond.notify()
