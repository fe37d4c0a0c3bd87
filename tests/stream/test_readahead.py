"""The readahead's rule alone: the credit each read gives, when it falls back, what it passes over.

Pure bookkeeping, with a clock the test moves; the prefetcher's tests run it on a feeder thread.
"""

from __future__ import annotations

import pytest

from dvc_stream.stream.readahead import (
    AHEAD,
    IDLE_SECONDS,
    RAMP_READS,
    READS_PER_FILE,
    Readahead,
)
from dvc_stream.workspace.manifest import FILE, DirTree, TrackedFile, TrackedOutput


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


def _output(tmp_path, nfiles: int) -> TrackedOutput:
    names = [f"f{i:03d}" for i in range(nfiles)]
    tree = DirTree(
        files={name: (f"oid-{name}", False) for name in names},
        children={"": dict.fromkeys(names, FILE)},
    )
    return TrackedOutput(
        path=str(tmp_path / "data"),
        out=None,
        isdir=True,
        oid="dir-oid",
        mtime=0.0,
        remote=None,
        _tree=tree,
    )


def _take_all(readahead: Readahead, present=lambda _path: False) -> list[str]:
    taken = []
    while (tracked := readahead.next_file(present)) is not None:
        taken.append(tracked.path.rsplit("/", 1)[1])
    return taken


def _files(output: TrackedOutput) -> list[TrackedFile]:
    return list(output.files_in(""))


def test_a_file_for_every_few_reads_then_ahead_after_every_read(tmp_path, clock):
    files = _files(_output(tmp_path, 300))
    readahead = Readahead(clock)
    taken = []
    for tracked in files[100 : 100 + RAMP_READS]:
        readahead.read(tracked)
        taken += _take_all(readahead)
    assert len(taken) == RAMP_READS // READS_PER_FILE
    readahead.read(files[200])
    assert len(_take_all(readahead)) == AHEAD
    readahead.read(files[201])
    assert len(_take_all(readahead)) == AHEAD
    assert _take_all(readahead) == []  # nothing without a read


def test_a_pause_in_the_reads_starts_the_count_again(tmp_path, clock):
    files = _files(_output(tmp_path, 300))
    readahead = Readahead(clock)
    for tracked in files[: RAMP_READS + 1]:
        readahead.read(tracked)
        clock.now += 0.1
    clock.now += IDLE_SECONDS + 1  # the fill had credit left: it is dropped
    for tracked in files[150 : 150 + READS_PER_FILE - 1]:
        readahead.read(tracked)
    assert _take_all(readahead) == []
    readahead.read(files[200])
    assert len(_take_all(readahead)) == 1


def test_files_present_hinted_or_read_cost_no_credit(tmp_path, clock):
    files = _files(_output(tmp_path, 12))
    readahead = Readahead(clock)
    readahead.hinted([files[3]])
    present = {files[1].path, files[4].path}
    reads = (files[0], files[2], files[6], files[7], files[8], files[9])
    for tracked in reads:
        readahead.read(tracked)
    assert len(reads) // READS_PER_FILE == 2  # files of credit
    # after f000: f001 present, f002 read, f003 hinted, f004 present; f006 to f009 read
    assert _take_all(readahead, present.__contains__) == ["f005", "f010"]


def test_reads_of_hinted_files_are_no_evidence(tmp_path, clock):
    files = _files(_output(tmp_path, 100))
    readahead = Readahead(clock)
    readahead.hinted(files[:50])
    for tracked in files[:50]:
        assert not readahead.read(tracked)
    assert _take_all(readahead) == []


def test_each_directory_gets_the_credit_of_its_own_reads(tmp_path, clock):
    names = {d: [f"{d}/f{i}" for i in range(10)] for d in ("a", "b")}
    output = _output(tmp_path, 0)
    output._tree = DirTree(
        files={n: (f"oid-{n}", False) for d in names for n in names[d]},
        children={"": {}, **{d: {n[2:]: FILE for n in names[d]} for d in names}},
    )
    readahead = Readahead(clock)
    for name in names["a"][: 2 * READS_PER_FILE]:
        readahead.read(output.file(name))
    for name in names["b"][: READS_PER_FILE - 1]:
        readahead.read(output.file(name))
    assert _take_all(readahead) == ["f6", "f7"]  # from a: b has had too few reads yet
