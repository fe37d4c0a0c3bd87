"""What each policy downloads, and the background fill's window: how many prefetches, and how
many bytes, it keeps in flight.

The prefetcher runs for real, on its own feeder thread; the broker's fetcher is replaced by one
that records what was submitted and lets the test finish each download, so that what is in
flight at any moment is known exactly. A read is what the broker reports of a demand fetch
(``touched``). Nothing here needs a remote.
"""

from __future__ import annotations

import os
import random
import threading
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass

import pytest

from dvc_stream.stream.fetcher import BACKGROUND, HINT
from dvc_stream.stream.object_sizes import SizeIndex
from dvc_stream.stream.prefetcher import BACKGROUND_BYTES_PER_JOB, Prefetcher
from dvc_stream.stream.readahead import AHEAD, RAMP_READS, READS_PER_FILE
from dvc_stream.workspace.manifest import DIR, FILE, DirTree, TrackedFile, TrackedOutput

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

    def drain(self) -> list[str]:
        """Finish every download as it starts, until no more start; all started, in order."""
        while True:
            for oid in self.in_flight():
                self.finish(oid)
            with self._cond:
                seen = len(self.started)
                more = self._cond.wait_for(lambda seen=seen: len(self.started) > seen, 0.3)
            if not more and not self.in_flight():
                return [oid for oid, _priority, _future in self.started]

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

    def present(self, path):
        return os.path.lexists(path)


def _directory(
    tmp_path, sizes: list[int], dirs: tuple[str, ...] = ("",)
) -> tuple[TrackedOutput, dict[str, int]]:
    """A tracked directory of absent files f000, f001, ... of these sizes (unknown to DVC), in
    each of ``dirs`` (subdirectories of it; "" for itself)."""
    names = {d: [f"{d}/f{i:03d}" if d else f"f{i:03d}" for i in range(len(sizes))] for d in dirs}
    tree = DirTree(
        files={name: (f"oid-{name}", False) for d in dirs for name in names[d]},
        children={d: {n.rpartition("/")[2]: FILE for n in names[d]} for d in dirs},
    )
    if dirs != ("",):
        tree.children[""] = {d: DIR for d in dirs}
    output = TrackedOutput(
        path=str(tmp_path / "data"),
        out=None,
        isdir=True,
        oid="dir-oid",
        mtime=0.0,
        remote=None,
        _tree=tree,
    )
    return output, {
        f"oid-{name}": size for d in dirs for name, size in zip(names[d], sizes, strict=True)
    }


@pytest.fixture
def prefetching(tmp_path):
    made = []

    def make(
        jobs: int,
        sizes: list[int],
        budget: int | None = None,
        policy: str = "listed",
        dirs: tuple[str, ...] = ("",),
    ):
        output, file_sizes = _directory(tmp_path, sizes, dirs)
        broker = _Broker(jobs, file_sizes)
        prefetcher = Prefetcher(broker, policy, budget)
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


# -- what each policy downloads -----------------------------------------------------------------


def _files(output: TrackedOutput, reldir: str) -> list[TrackedFile]:
    return list(output.files_in(reldir))


def _oids(files: list[TrackedFile]) -> list[str]:
    return [tracked.oid for tracked in files]


@pytest.mark.parametrize(
    ("policy", "fills"),
    [
        ("none", []),
        ("sampler", []),
        ("listed", ["listed"]),
        ("touched", ["read"]),
        ("auto", []),
    ],
)
def test_what_each_policy_downloads(prefetching, policy, fills):
    """The program lists one directory, reads a file of another and hints two of a third."""
    prefetcher, downloads, output = prefetching(
        jobs=4, sizes=[KB] * 10, policy=policy, dirs=("listed", "read", "hinted")
    )
    hinted = _files(output, "hinted")[:2]
    prefetcher.hint(hinted)
    prefetcher.listed(output, "listed")
    prefetcher.touched(_files(output, "read")[0])
    expected = _oids(hinted) + [oid for d in fills for oid in _oids(_files(output, d))]
    assert sorted(downloads.drain()) == sorted(expected)


def test_a_listing_alone_downloads_nothing(prefetching):
    prefetcher, downloads, output = prefetching(
        jobs=11, sizes=[KB] * 100, policy="auto", dirs=("a", "b")
    )
    prefetcher.listed(output, "")
    prefetcher.listed(output, "a")
    prefetcher.listed(output, "b")
    assert downloads.drain() == []


class _Program:
    """Reads files in a given order. A file the prefetcher fetched is in the workspace by then,
    so only the others are reads the broker hears of (``touched``)."""

    def __init__(self, prefetcher: Prefetcher, downloads: _Downloads, order: list[TrackedFile]):
        self.prefetcher = prefetcher
        self.downloads = downloads
        self.unread = list(order)

    def read(self, count: int) -> None:
        """Go on until ``count`` files were read that nothing had fetched."""
        while count:
            tracked = self.unread.pop(0)
            if tracked.oid not in {oid for oid, _priority, _f in self.downloads.started}:
                self.prefetcher.touched(tracked)
                count -= 1


def test_readahead_grows_with_reads_and_stops_with_them(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[KB] * 200, policy="auto")
    order = _files(output, "")
    random.Random(1).shuffle(order)
    program = _Program(prefetcher, downloads, order)

    ramp = RAMP_READS // READS_PER_FILE
    program.read(READS_PER_FILE - 1)
    assert downloads.drain() == []  # a read or two: no evidence yet
    program.read(1)
    assert len(downloads.drain()) == 1
    program.read(RAMP_READS - READS_PER_FILE)
    assert len(downloads.drain()) == ramp  # a file for every READS_PER_FILE reads so far

    program.read(1)  # the output has had RAMP_READS + 1 reads
    assert len(downloads.drain()) == ramp + AHEAD
    program.read(1)
    ramped = ramp + 2 * AHEAD
    assert len(downloads.drain()) == ramped  # each read lets the fill run AHEAD files on
    assert {priority for _oid, priority, _f in downloads.started} == {BACKGROUND}
    # no more reads: nothing more, although more than half the files are still absent
    assert len(downloads.drain()) == ramped < 200 / 2


def test_the_readahead_takes_the_files_after_the_first_read_in_name_order(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[KB] * 12, policy="auto")
    files = _files(output, "")
    assert READS_PER_FILE == 3
    for tracked in (files[6], files[11], files[2]):
        prefetcher.touched(tracked)
    assert downloads.drain() == ["oid-f007"]
    for tracked in (files[3], files[4], files[5]):
        prefetcher.touched(tracked)
    assert downloads.drain() == ["oid-f007", "oid-f008"]
    for tracked in (files[9], files[10], files[1]):
        prefetcher.touched(tracked)
    # f009 to f011 were read: from the first name on
    assert downloads.drain() == ["oid-f007", "oid-f008", "oid-f000"]


def test_a_shuffled_epoch_reaches_full_concurrency_within_its_first_few_dozen_reads(prefetching):
    """Reads spread over ten directories, as a shuffled epoch over a class folder reads."""
    dirs = tuple(f"d{i}" for i in range(10))
    prefetcher, downloads, output = prefetching(
        jobs=11, sizes=[8 * KB] * 50, policy="auto", dirs=dirs
    )
    order = [tracked for d in dirs for tracked in _files(output, d)]
    random.Random(2).shuffle(order)
    program = _Program(prefetcher, downloads, order)
    program.read(RAMP_READS)
    ramp = len(downloads.drain())
    assert ramp <= RAMP_READS // READS_PER_FILE  # a file for every few reads of each directory

    program.read(1)
    window = prefetcher.background_window
    assert len(downloads.settle(ramp + window)) == window == 9  # every background slot
    for oid in downloads.in_flight():
        downloads.finish(oid)
    assert len(downloads.settle(ramp + 2 * window)) == window  # and it keeps them


def test_known_orders_are_followed_with_nothing_beyond_them(prefetching):
    prefetcher, downloads, output = prefetching(jobs=11, sizes=[KB] * 100, policy="auto")
    order = _files(output, "")
    random.Random(3).shuffle(order)
    hinted = order[: 2 * RAMP_READS]
    prefetcher.hint(hinted)
    for tracked in hinted:  # the program reads what it hinted (some of it before it arrives)
        prefetcher.touched(tracked)
    assert downloads.drain() == _oids(hinted)
    assert {priority for _oid, priority, _f in downloads.started} == {HINT}

    _Program(prefetcher, downloads, order).read(1)  # the first read no hint foretold
    assert len(downloads.drain()) == len(hinted)
