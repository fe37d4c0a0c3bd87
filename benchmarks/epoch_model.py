"""A model of the unhinted first epoch of the large scenario, fed with the ``-j`` sweep's numbers.

Without the program's read order, ``dvc stream`` has one scheduling choice left: how many
background downloads to keep in flight. A wider window fills the workspace faster but makes each
of the program's own misses wait longer at the server. The ``-j`` sweep (``test_jobs_sweep``)
measures both sides of that trade for each window: the arrival rate of objects and the wait per
demand fetch. This model replays train.py against them: a shuffled read order, a background fill
in listing order (independent of the shuffle), two pool workers that read their batches one file
at a time, and a main process that consumes one batch per step.

Checked against the measured epochs of the same windows, it then answers what the sweep cannot:
whether a window that changes during the epoch (narrow while most reads miss, wide later, or the
reverse) would do better than the best fixed one. Usage::

    python benchmarks/epoch_model.py [benchmarks/results/targets/summary.json]
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench_lib import background_window
from test_epoch import SCENARIOS, WORKERS

PREFETCH_FACTOR = 2  # train.py's default: batches in flight per worker
READ_S = 0.0015  # a worker's read + md5 + crc32 of a present 512 KB file
TICK_S = 0.001
SEEDS = 40


@dataclass
class Worker:
    """A pool worker: the batch it reads, the next file in it, and when it is free again."""

    batch: int | None = None
    index: int = 0
    busy_until: float = 0.0
    missing: bool = False  # waiting for a demand fetch


@dataclass(frozen=True)
class Point:
    """One measured window: objects arriving per second, and the wait per demand fetch."""

    window: int
    rate: float
    wait_s: float
    epoch_s: float


def load_points(summary: Path) -> tuple[list[Point], float, float]:
    """The sweep's points (naive as window 0), the start-up time and this run's pull epoch."""
    records = json.loads(summary.read_text())
    epoch = {
        r["mode"]: r for r in records if r.get("kind") == "epoch" and r["scenario"] == "large"
    }
    naive = epoch["stream-naive"]
    points = [Point(0, 1 / _wait(naive) * WORKERS, _wait(naive), naive["epoch_s"])]
    for r in records:
        if r.get("kind") == "jobs-sweep" and r["scenario"] == "large":
            fetched = r["stream_demand_files"] + r["stream_prefetched_files"]
            rate = fetched / r["stream_fetch_seconds"]
            points.append(Point(background_window(r), rate, _wait(r), r["epoch_s"]))
    batch = SCENARIOS["large"]["batch"]
    start_s = naive["ttfb_s"] - batch * _wait(naive)  # launch to the first demand fetch
    return points, start_s, epoch["pull"]["epoch_s"]


def _wait(record: dict) -> float:
    return record["stream_wait_seconds"] / record["stream_demand_files"]


def simulate(policy, start_s: float, seed: int) -> float:
    """One epoch; ``policy(fraction present) -> Point`` picks the window as the fill goes."""
    conf = SCENARIOS["large"]
    nfiles, batch, step = conf["nfiles"], conf["batch"], conf["sleep_ms"] / 1000
    order = list(range(nfiles))
    random.Random(seed).shuffle(order)
    batches = [order[i : i + batch] for i in range(0, nfiles, batch)]
    present = [False] * nfiles
    npresent = fill_pos = 0
    fill_due = 0.0
    queue = list(range(min(WORKERS * PREFETCH_FACTOR, len(batches))))
    submitted = len(queue)
    workers = [Worker() for _ in range(WORKERS)]
    done: set[int] = set()
    consumed, main_free, now = 0, 0.0, 0.0
    while consumed < len(batches):
        point = policy(npresent / nfiles)
        missing = sum(w.missing for w in workers)
        fill_due += max(point.rate - missing / point.wait_s, 0.0) * TICK_S
        while fill_due >= 1 and fill_pos < nfiles:
            if not present[fill_pos]:
                present[fill_pos] = True
                npresent += 1
                fill_due -= 1
            fill_pos += 1
        for w in workers:
            if now < w.busy_until:
                continue
            if w.batch is None:
                if not queue:
                    continue
                w.batch, w.index = queue.pop(0), 0
            files = batches[w.batch]
            if w.index == len(files):
                done.add(w.batch)
                w.batch, w.missing = None, False
                continue
            name = files[w.index]
            w.missing = not present[name]
            if w.missing:
                present[name] = True
                npresent += 1
            w.busy_until = now + READ_S + (point.wait_s if w.missing else 0.0)
            w.index += 1
        if consumed in done and now >= main_free:
            consumed += 1
            main_free = now + step
            if submitted < len(batches):
                queue.append(submitted)
                submitted += 1
        now += TICK_S
    return start_s + now + step


def median_epoch(policy, start_s: float) -> float:
    return statistics.median(simulate(policy, start_s, seed) for seed in range(SEEDS))


def fixed(point: Point):
    return lambda _fraction: point


def switched(early: Point, late: Point, at: float):
    """``early``'s window until ``at`` of the files are present, then ``late``'s."""
    return lambda fraction: early if fraction < at else late


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    summary = Path(argv[0]) if argv else here / "results" / "targets" / "summary.json"
    points, start_s, pull_s = load_points(summary)
    print(f"start-up to the first demand fetch: {start_s:.2f} s; pull epoch {pull_s:.2f} s\n")
    print("| window | objects/s | wait per demand fetch ms | measured epoch s | model epoch s |")
    print("|---|---|---|---|---|")
    for p in points:
        model = median_epoch(fixed(p), start_s)
        print(
            f"| {p.window} | {p.rate:.0f} | {p.wait_s * 1000:.1f} | {p.epoch_s:.2f} "
            f"| {model:.2f} |"
        )
    best_fixed = min(median_epoch(fixed(p), start_s) for p in points)
    changing = [
        (median_epoch(switched(early, late, at), start_s), early.window, late.window, at)
        for early, late in itertools.permutations([p for p in points if p.window], 2)
        for at in (0.25, 0.5, 0.75)
    ]
    best = min(changing)
    print(
        f"\nbest fixed window: {best_fixed:.2f} s ({best_fixed / pull_s:.2f}x pull); best "
        f"switched: window {best[1]} until {best[3]:.0%} present, then {best[2]}: "
        f"{best[0]:.2f} s ({best[0] / pull_s:.2f}x pull)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
