"""The background fill's window: how many prefetches, and how many bytes, it keeps in flight.

The prefetcher runs for real, on its own feeder thread; the broker's fetcher is replaced by one
that records what was submitted and lets the test finish each download, so that what is in
flight at any moment is known exactly. Nothing here needs a remote.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass

import pytest

from dvc_stream.stream.fetcher import BACKGROUND, HINT
from dvc_stream.stream.object_sizes import SizeIndex
from dvc_stream.stream.prefetcher import BACKGROUND_BYTES_PER_JOB, Prefetcher
from dvc_stream.workspace.manifest import FILE, DirTree, TrackedFile, TrackedOutput

TIMEOUT = 30  # seconds: only a hang would reach it
KB = 1024


class _Downloads:
    """Stands in for the fetcher: every submitted download stays in flight until finished."""

    def __init__(self, sizes: SizeIndex, file_sizes: dict[str, int]):
        self.sizes = sizes
        self.file_sizes = file_sizes  # oid -> size, told to `sizes` when the download ends
        self.started: list[tuple[str, int, Future]] = []  # (oid, priority, future)
        self._cond = threading.Condition()

    def submit(self, ref: TrackedFile, priority: int) -> Future:
        future: Future = Future()
        with self._cond:
            self.started.append((ref.oid, priority, future))
            self._cond.notify_all()
        return future

    def in_flight(self) -> list[str]:
        with self._cond:
            return [oid for oid, _priority, future in self.started if not future.done()]

    def wait_started(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.started) >= count, TIMEOUT)

    def settle(self, count: int) -> list[str]:
        """Wait until ``count`` downloads were submitted and no more follow; the ones in flight."""
        self.wait_started(count)
        with self._cond:
            # NOTE: the feeder starts at most one more at a time; give it the chance to overshoot
            assert not self._cond.wait_for(lambda: len(self.started) > count, 0.3)
        return self.in_flight()

    def finish(self, oid: str) -> None:
        self.sizes.remember(oid, self.file_sizes[oid])  # as the fetcher's on_fetched does
        with self._cond:
            future = next(f for o, _p, f in self.started if o == oid and not f.done())
        future.set_result(oid)


@dataclass
class _Broker:
    """What the prefetcher asks of the broker."""

    jobs: int
    file_sizes: dict[str, int]

    def __post_init__(self):
        self.sizes = SizeIndex(jobs=self.jobs)
        self.fetcher = _Downloads(self.sizes, self.file_sizes)

    def thread_context(self):
        return nullcontext()

    def ref(self, tracked):
        return tracked  # all the stand-in fetcher needs is its oid

    def place_fetched(self, tracked):
        pass  # no workspace here: what is in flight is what these tests look at


def _directory(tmp_path, sizes: list[int]) -> tuple[TrackedOutput, dict[str, int]]:
    """A tracked directory of absent files f000, f001, ... of these sizes (unknown to DVC)."""
    names = [f"f{i:03d}" for i in range(len(sizes))]
    tree = DirTree(
        files={name: (f"oid-{name}", False) for name in names},
        children={"": dict.fromkeys(names, FILE)},
    )
    output = TrackedOutput(
        path=str(tmp_path / "data"),
        out=None,
        isdir=True,
        oid="dir-oid",
        mtime=0.0,
        remote=None,
        _tree=tree,
    )
    return output, {f"oid-{name}": size for name, size in zip(names, sizes, strict=True)}


@pytest.fixture
def prefetching(tmp_path):
    made = []

    def make(jobs: int, sizes: list[int], budget: int | None = None):
        output, file_sizes = _directory(tmp_path, sizes)
        broker = _Broker(jobs, file_sizes)
        prefetcher = Prefetcher(broker, "listed", budget)
        made.append(prefetcher)
        return prefetcher, broker.fetcher, output

    yield make
    for prefetcher in made:
        prefetcher.close()


def test_small_files_fill_the_count_window(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[8 * KB] * 40)
    assert prefetcher.background_window == 9

    prefetcher.listed(output, "")
    assert downloads.settle(2) == ["oid-f000", "oid-f001"]  # no size known yet: two at most

    downloads.finish("oid-f000")
    assert len(downloads.settle(10)) == 9
    assert {priority for _oid, priority, _f in downloads.started} == {BACKGROUND}


def test_large_files_are_held_to_the_byte_window(prefetching):
    size = 512 * KB
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[size] * 40)
    assert prefetcher.background_bytes == 11 * BACKGROUND_BYTES_PER_JOB
    by_bytes = -(-prefetcher.background_bytes // size)  # starts while under the bound
    assert by_bytes == 4 < prefetcher.background_window

    prefetcher.listed(output, "")
    for oid in downloads.settle(2):
        downloads.finish(oid)
    assert len(downloads.settle(2 + by_bytes)) == by_bytes

    started = len(downloads.started)
    for oid in downloads.in_flight():
        downloads.finish(oid)
    assert len(downloads.settle(started + by_bytes)) == by_bytes


def test_never_fewer_than_two_in_flight(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[64 * 1024 * KB] * 10)
    prefetcher.listed(output, "")
    downloads.finish(downloads.settle(2)[0])
    assert downloads.settle(3) == ["oid-f001", "oid-f002"]  # 64 MB each, far over the bound
    downloads.finish("oid-f001")
    assert downloads.settle(4) == ["oid-f002", "oid-f003"]


def test_hints_use_every_job_whatever_their_size(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[4 * 1024 * KB] * 40)
    prefetcher.hint(list(output.files_in("")))
    assert len(downloads.settle(11)) == 11
    assert {priority for _oid, priority, _f in downloads.started} == {HINT}


def test_the_budget_stops_the_fill(prefetching):
    prefetcher, downloads, output = prefetching(jobs=4, sizes=[100 * KB] * 40, budget=250 * KB)
    assert prefetcher.background_window == 2
    prefetcher.listed(output, "")
    downloads.settle(2)
    downloads.finish("oid-f000")  # 100 KB spent
    downloads.settle(3)
    downloads.finish("oid-f001")  # 200 KB
    downloads.settle(4)
    downloads.finish("oid-f002")  # 300 KB: over the budget, nothing more starts
    assert downloads.settle(4) == ["oid-f003"]
    downloads.finish("oid-f003")
    assert downloads.settle(4) == []


def test_files_already_in_the_workspace_are_not_downloaded(prefetching, tmp_path):
    prefetcher, downloads, output = prefetching(jobs=4, sizes=[KB] * 3)
    (tmp_path / "data").mkdir()
    for name in ("f000", "f002"):
        (tmp_path / "data" / name).write_bytes(b"x" * KB)
    prefetcher.listed(output, "")
    assert downloads.settle(1) == ["oid-f001"]


def test_a_directory_is_fetched_in_listing_order(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[KB] * 5)
    prefetcher.listed(output, "")
    downloads.wait_started(2)
    downloads.finish("oid-f000")
    downloads.wait_started(5)
    assert [oid for oid, _p, _f in downloads.started] == [f"oid-f00{i}" for i in range(5)]
