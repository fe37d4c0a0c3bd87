"""Readahead: the ``auto`` policy's background fill, which follows what the program reads.

A listing says what a directory holds, not what the program will read (a notebook lists a folder
of 10,000 images to show one), so it downloads nothing. The evidence is a read: the program
opening a file of a tracked directory that is not in the workspace yet and that no hint named
(a hinted file's read was foretold, and the hint already fetches it). Each directory read from
gets credit, the files the background fill may start in it:

- until the output has had ``RAMP_READS`` reads, one file for every ``READS_PER_FILE`` reads of
  the directory: a program that looks at a few files gets a file more, one that reads a random
  part of a directory gets a third as many files again;
- from then on, every read of a directory tops its credit up to ``AHEAD`` files: a shuffled
  epoch, whose reads are spread over the whole directory, keeps the fill at full concurrency;
  when its reads stop, the fill stops at most ``AHEAD`` files later;
- after ``IDLE_SECONDS`` without a read of the output, its count starts again from zero and its
  directories' credit is dropped.

Only files the program itself opens count as reads: ``dvc stream`` does not see a file the fill
placed being read. A directory's files are taken in name order from the one after its first
read, wrapping around, so that a program reading in name order finds them ready; files already
present or hinted are passed over without spending credit. Not thread-safe: the prefetcher calls
it under its own lock.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from typing import TYPE_CHECKING

from dvc_stream.hooks.resolver import FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dvc_stream.workspace.manifest import TrackedFile, TrackedOutput

RAMP_READS = 32  # reads of an output before the fill may run AHEAD files past each read
READS_PER_FILE = 3  # reads of a directory for each file of credit before that
AHEAD = 32  # files a directory's fill may start after its latest read, once ramped up
IDLE_SECONDS = 10.0  # a pause in the reads that sends the output back to the start


class _Output:
    """An output's reads so far, and when the latest came."""

    def __init__(self) -> None:
        self.reads = 0
        self.last_read = 0.0


class DirFill:
    """One directory's files in name order, the fill's place among them, and its credit."""

    def __init__(self, output: TrackedOutput, reldir: str, first_read: str):
        self.output = output
        self.prefix = f"{reldir}/" if reldir else ""
        children = output.children(reldir) or {}
        self.names = sorted(name for name, kind in children.items() if kind == FILE)
        self.start = bisect.bisect_right(self.names, first_read)
        self.passed = 0  # names the fill has looked at, from ``start`` on
        self.credit = 0  # files the fill may start
        self.reads = 0  # reads not yet turned into credit, while ramping up

    def next_file(self) -> TrackedFile | None:
        """The next file the fill has not looked at; None once it has looked at them all."""
        while self.passed < len(self.names):
            name = self.names[(self.start + self.passed) % len(self.names)]
            self.passed += 1
            tracked = self.output.file(self.prefix + name)
            if tracked is not None:
                return tracked
        return None


class Readahead:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._outputs: dict[str, _Output] = {}
        self._dirs: dict[tuple[str, str], DirFill] = {}
        self._ready: deque[DirFill] = deque()  # directories with credit, taking turns
        self._known: set[str] = set()  # paths hinted or read: never background fill

    def hinted(self, files: Iterable[TrackedFile]) -> None:
        self._known.update(tracked.path for tracked in files)

    def read(self, tracked: TrackedFile) -> bool:
        """Count a read of ``tracked``; whether it gave the fill credit."""
        if not tracked.output.isdir or tracked.path in self._known:
            return False
        self._known.add(tracked.path)
        reads = self._count(tracked.output)
        fill = self._dir(tracked)
        if reads > RAMP_READS:
            fill.credit = max(fill.credit, AHEAD)
        else:
            fill.reads += 1
            fill.credit += fill.reads // READS_PER_FILE
            fill.reads %= READS_PER_FILE
        if fill.credit >= 1 and fill not in self._ready:
            self._ready.append(fill)
        return fill.credit >= 1

    def next_file(self, present: Callable[[str], bool] = os.path.lexists) -> TrackedFile | None:
        """The next file to fill, one directory with credit after the other; spends a credit."""
        while self._ready:
            fill = self._ready.popleft()
            tracked = fill.next_file()
            while tracked is not None and (tracked.path in self._known or present(tracked.path)):
                tracked = fill.next_file()
            if tracked is None:
                fill.credit = 0  # looked at every file: nothing left to fill
                continue
            fill.credit -= 1
            if fill.credit >= 1:
                self._ready.append(fill)
            return tracked
        return None

    def _count(self, output: TrackedOutput) -> int:
        state = self._outputs.setdefault(output.path, _Output())
        now = self.clock()
        if state.reads and now - state.last_read > IDLE_SECONDS:
            state.reads = 0
            self._drop_credit(output)
        state.reads += 1
        state.last_read = now
        return state.reads

    def _dir(self, tracked: TrackedFile) -> DirFill:
        reldir = tracked.reldir
        key = (tracked.output.path, reldir)
        fill = self._dirs.get(key)
        if fill is None:
            name = os.path.basename(tracked.path)
            fill = self._dirs[key] = DirFill(tracked.output, reldir, name)
        return fill

    def _drop_credit(self, output: TrackedOutput) -> None:
        for fill in self._dirs.values():
            if fill.output is output:
                fill.credit = fill.reads = 0
        self._ready = deque(fill for fill in self._ready if fill.output is not output)
