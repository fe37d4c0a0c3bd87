"""Runs that place files into different outputs at the same moment each enter theirs in the
partial-workspace record: none is lost (what DVC's commands read to keep absent files)."""

from __future__ import annotations

import multiprocessing

from dvc_stream.workspace import record

ROUNDS, PROCESSES = 40, 6


def _claim(tmp_dir: str, index: int, start) -> None:
    start.wait()
    record.claim(tmp_dir, f"data/d{index}", f"{index:032x}.dir")


def test_runs_claiming_together_record_every_output(tmp_path):
    tmp_dir = str(tmp_path / "tmp")
    fork = multiprocessing.get_context("fork")
    lost = 0
    for _ in range(ROUNDS):
        record.release(tmp_dir, [f"data/d{i}" for i in range(PROCESSES)])
        start = fork.Event()
        procs = [fork.Process(target=_claim, args=(tmp_dir, i, start)) for i in range(PROCESSES)]
        for proc in procs:
            proc.start()
        start.set()
        for proc in procs:
            proc.join()
        lost += PROCESSES - len(record.load(tmp_dir))
    assert lost == 0
