"""First epoch from a cold start: ``dvc pull`` then train, vs ``dvc stream``, vs ``dvc.api``.

Edit ``SCENARIOS`` (and ``QUICK``, ``SMOKE`` for ``--quick``, ``--smoke``) to change what is
measured. Every measured
run starts cold: workspace data, ``.dvc/cache`` and DVC's site cache are wiped, and the remote is
reached through the latency proxy. See ``benchmarks/README.md`` for what each number means.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from bench_lib import (
    RECORDS,
    TRAIN,
    Aggregate,
    check,
    dvc_cmd,
    last_json,
    run_measured,
    self_cpu,
)

KB = 1024
# The same epoch through a real torch DataLoader (train.py --loader torch), where `dvc stream`
# hints the sampler's order by itself; measured when torch is installed.
TORCH_MODES = ["pull-torch", "stream-torch"]
MODES = ["pull", "stream-naive", "stream", "stream-hint", "stream-mount", "dvc-api", *TORCH_MODES]

# name -> dataset shape, training loop, and the modes measured on it
SCENARIOS: dict[str, dict] = {
    "small": {
        "nfiles": 5000,
        "size": 8 * KB,
        "fanout": 10,  # files spread round-robin over this many dirs d0, d1, ...
        "batch": 64,
        "sleep_ms": 5,
        "train_classes": None,  # None: the whole directory
        "modes": MODES,
    },
    "large": {
        "nfiles": 600,
        "size": 512 * KB,
        "fanout": 6,
        "batch": 16,
        "sleep_ms": 150,
        "train_classes": None,
        "modes": MODES,
    },
    # list a large folder, read a few of its files, pause: a notebook looking at a dataset
    "explore": {
        "nfiles": 2000,
        "size": 64 * KB,
        "fanout": 1,
        "batch": 2,
        "sleep_ms": 0,
        "train_classes": None,
        "subset_files": 4,
        "pause_s": 8,
        "modes": ["pull", "stream-naive", "stream"],
    },
    # list everything, train on a random 10% of the files (two epochs, the second one warm)
    "listed-subset": {
        "nfiles": 300,
        "size": 1024 * KB,
        "fanout": 3,
        "batch": 8,
        "sleep_ms": 50,
        "train_classes": None,
        "subset_files": 30,
        "modes": ["pull", "stream-naive", "stream", "stream-hint", *TORCH_MODES],
    },
    "subset": {
        "nfiles": 50 * 100,
        "size": 64 * KB,
        "fanout": 50,  # 50 class dirs d0..d49 of 100 files each
        "batch": 32,
        "sleep_ms": 20,
        "train_classes": 5,  # train on d0..d4
        "modes": [
            "pull",
            "pull-subset",
            "stream-naive",
            "stream",
            "stream-hint",
            "dvc-api",
            *TORCH_MODES,
        ],
    },
}
# --quick: these keys override SCENARIOS
QUICK: dict[str, dict] = {
    "small": {"nfiles": 600},
    "large": {"nfiles": 100},
    "subset": {"nfiles": 20 * 50, "fanout": 20, "train_classes": 2},
    "explore": {"nfiles": 500, "pause_s": 3},
    "listed-subset": {"size": 256 * KB},
}
# --smoke: tiny datasets, a few batches each; the run checks that every mode works and that the
# summary has its row and ratio, not what the numbers are.
SMOKE: dict[str, dict] = {
    "small": {"nfiles": 40, "batch": 8},
    "large": {"nfiles": 8, "batch": 2, "sleep_ms": 20},
    "subset": {"nfiles": 10 * 4, "fanout": 10, "train_classes": 2, "batch": 4},
    "explore": {"nfiles": 40, "pause_s": 1},
    "listed-subset": {"nfiles": 30, "size": 64 * KB, "subset_files": 6, "batch": 2},
}
ROUNDS = 3  # runs per scenario x mode (1 with --quick or --smoke); the record holds the median
# NOTE: the rounds of a scenario are interleaved: round 1 of every mode, then round 2, each round
# in an order rotated by one, so that `pull` and the modes it is compared with share this
# machine's drift (up to 10 % over tens of minutes) instead of each meeting a different part.
WORKERS = 2  # DataLoader-like pool size in train.py
RTT_SWEEP = [0, 20, 50]  # ms, small scenario only; --smoke: the first two
SWEEP_MODES = ["pull", "stream-naive", "stream"]
# `dvc stream -j N`, unhinted: without the read order, the number of downloads in flight is the
# one scheduling choice left, trading the background fill's rate against the latency of the
# program's own misses at the server. scenario -> the -j values measured.
# --quick: every other value; --smoke: the first.
JOBS_SWEEP = {"large": [4, 6, 8, 11, 16, 24], "small": [6, 8, 11, 16]}
DATA = "data/images"


def scenario(name: str, profile: str) -> dict:
    """The scenario's dataset and loop for ``profile`` (``full``, ``quick`` or ``smoke``)."""
    conf = dict(SCENARIOS[name])
    conf.update({"quick": QUICK, "smoke": SMOKE}.get(profile, {}).get(name, {}))
    return conf


def classes_of(conf: dict) -> list[str]:
    return [f"d{i}" for i in range(conf["train_classes"] or 0)]


def train_args(
    conf: dict, epochs: int, reader: str = "open", hint: bool = False, loader: str = "pool"
) -> list[str]:
    args = [
        sys.executable,
        str(TRAIN),
        "--data",
        DATA,
        "--batch",
        str(conf["batch"]),
        "--sleep-ms",
        str(conf["sleep_ms"]),
        "--workers",
        str(WORKERS),
        "--epochs",
        str(epochs),
        "--reader",
        reader,
        "--loader",
        loader,
    ]
    classes = classes_of(conf)
    if classes:
        args += ["--classes", *classes]
    if conf.get("subset_files"):
        args += ["--subset-files", str(conf["subset_files"])]
    if conf.get("pause_s"):
        args += ["--pause-s", str(conf["pause_s"])]
    if hint:
        args.append("--hint")
    return args


def run_mode(
    repo, proxy, conf: dict, mode: str, epochs: int, stats_dir, options: tuple[str, ...] = ()
) -> dict:
    """One cold-started run of ``mode``; returns its metrics. The caller wiped the repo.

    ``options`` are added to the ``dvc stream`` command line.
    """
    env, cwd = repo.env, repo.root
    loader = "torch" if mode.endswith("-torch") else "pool"
    mode = mode.removesuffix("-torch")
    procs = []
    metrics: dict = {}
    proxy.reset_counters()
    server_cpu0 = self_cpu()
    t0 = time.time()
    if mode in ("pull", "pull-subset"):
        targets = [f"{DATA}/{c}" for c in classes_of(conf)] if mode == "pull-subset" else []
        fetch = check(run_measured(dvc_cmd("fetch", "-q", *targets), cwd, env))
        checkout = check(run_measured(dvc_cmd("checkout", "-q", *targets), cwd, env))
        procs += [fetch, checkout]
        metrics.update(
            fetch_s=fetch.wall_s, checkout_s=checkout.wall_s, pull_s=fetch.wall_s + checkout.wall_s
        )
        dvc_procs = [fetch, checkout]
        train = check(run_measured(train_args(conf, epochs, loader=loader), cwd, env))
        procs.append(train)
    elif mode in ("stream", "stream-naive", "stream-hint", "stream-mount"):
        stats_file = stats_dir / f"stats-{mode}-{time.monotonic_ns()}.json"
        opts = {"stream-naive": ["--prefetch", "none"], "stream-mount": ["--mount"]}.get(mode, [])
        opts = [*opts, *options]
        cmd = dvc_cmd(
            "stream",
            *opts,
            "--stats",
            str(stats_file),
            "--",
            *train_args(conf, epochs, hint=mode == "stream-hint", loader=loader),
        )
        train = check(run_measured(cmd, cwd, env))
        procs.append(train)
        dvc_procs = [train]
        if stats_file.exists():
            stats = json.loads(stats_file.read_text())
            metrics.update({f"stream_{k}": v for k, v in stats.items() if k != "_lock"})
    elif mode == "dvc-api":
        # NOTE: one DVCFileSystem per worker: per-file dvc.api.open costs 0.5-2 s here (it opens
        # the repo, builds the index and a new S3 session per call); test_micro measures it.
        train = check(run_measured(train_args(conf, 1, reader="dvc-fs"), cwd, env))
        procs.append(train)
        dvc_procs = [train]
    else:
        raise ValueError(mode)
    result = last_json(train.stdout)
    metrics.update(
        ttfb_s=result["first_batch_ts"] - t0,
        epoch_s=result["epoch_end_ts"] - t0,
        program_ttfb_s=result["ttfb_s"],
        program_epoch_s=result["epoch_s"],
        warm_epoch_s=result["epochs_s"][1] if len(result["epochs_s"]) > 1 else None,
        files=result["files"],
        files_fetched=_files_fetched(metrics, conf, mode),
        bytes_read=result["bytes"],
        bytes_fetched=proxy.bytes_down,
        requests=proxy.requests,
        peak_rss_mb=max(p.maxrss_mb for p in dvc_procs),
        cpu_s=sum(p.cpu_s for p in procs),
        server_cpu_s=self_cpu() - server_cpu0,
        wall_s=sum(p.wall_s for p in procs),
    )
    assert result["files"] > 0
    return metrics


def _files_fetched(metrics: dict, conf: dict, mode: str) -> int | None:
    """Files downloaded: what ``dvc stream --stats`` counted; all of them for a whole pull."""
    if "stream_demand_files" in metrics:
        return metrics["stream_demand_files"] + metrics["stream_prefetched_files"]
    return conf["nfiles"] if mode == "pull" else None


def _measure(
    benchmark,
    repo,
    proxy,
    conf,
    mode,
    rounds,
    epochs,
    tmp_path,
    base: dict,
    options=(),
    agg: Aggregate | None = None,
) -> dict:
    """Run ``rounds`` cold runs; publish the record of ``agg``'s runs (theirs and earlier ones).

    A record already in RECORDS for ``base`` (an earlier round of the same case) is replaced.
    """
    agg = Aggregate() if agg is None else agg

    def run():
        agg.add(run_mode(repo, proxy, conf, mode, epochs, tmp_path, options))

    benchmark.pedantic(run, setup=repo.wipe, rounds=rounds, iterations=1)
    record = agg.record(**base)
    benchmark.extra_info.update(record)
    earlier = [i for i, r in enumerate(RECORDS) if base.items() <= r.items()]
    if earlier:
        RECORDS[earlier[0]] = record
    else:
        RECORDS.append(record)
    return record


def _record_base(
    kind: str, name: str, mode: str, conf: dict, proxy, profile: str, rtt_ms=None, **extra
) -> dict:
    """What identifies a record: the case, the dataset and the link (the proxy's by default)."""
    return {
        "kind": kind,
        "scenario": name,
        "mode": mode,
        **extra,
        "rtt_ms": proxy.rtt_ms if rtt_ms is None else rtt_ms,
        "bandwidth_mbit": proxy.bandwidth_mbit,
        "nfiles": conf["nfiles"],
        "file_size": conf["size"],
        "profile": profile,
    }


def interleaved(modes: list[str], rounds: int) -> list[tuple[int, str]]:
    """(round, mode) in the order they run: every mode once per round, rotated by one each."""
    return [
        (number, mode)
        for number in range(rounds)
        for mode in modes[number % len(modes) :] + modes[: number % len(modes)]
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from conftest import profile_option, rounds_option

    profile = profile_option(metafunc.config)
    if metafunc.definition.name == "test_first_epoch":
        rounds = rounds_option(metafunc.config)
        metafunc.parametrize(
            ("name", "round_number", "mode"),
            [
                pytest.param(name, number, mode, id=f"{name}-{mode}-r{number + 1}")
                for name, conf in SCENARIOS.items()
                for number, mode in interleaved(conf["modes"], rounds)
            ],
        )
    elif metafunc.definition.name == "test_rtt_sweep":
        rtts = RTT_SWEEP[:2] if profile == "smoke" else RTT_SWEEP
        metafunc.parametrize("rtt", rtts)
    elif metafunc.definition.name == "test_jobs_sweep":
        metafunc.parametrize(
            ("name", "jobs"),
            [
                pytest.param(name, jobs, id=f"{name}-j{jobs}")
                for name, values in JOBS_SWEEP.items()
                for jobs in sweep_values(values, profile)
            ],
        )


def sweep_values(values: list[int], profile: str) -> list[int]:
    """The ``-j`` values a run measures: all of them, every other one, or the first."""
    return {"full": values, "quick": values[::2], "smoke": values[:1]}[profile]


_EPOCH_RUNS: dict[tuple[str, str], Aggregate] = {}  # (scenario, mode) -> its rounds so far


def test_first_epoch(
    benchmark, bench_config, scenario_repo, proxy, tmp_path, name, round_number, mode
):
    """One round of one mode; the mode's record in RECORDS holds the median of its rounds."""
    if mode in TORCH_MODES:
        pytest.importorskip("torch")
    conf = scenario(name, bench_config.profile)
    repo = scenario_repo(name, conf)
    benchmark.group = f"epoch-{name}-{mode}"
    _measure(
        benchmark,
        repo,
        proxy,
        conf,
        mode,
        1,
        epochs=2,
        tmp_path=tmp_path,
        base=_record_base("epoch", name, mode, conf, proxy, bench_config.profile),
        agg=_EPOCH_RUNS.setdefault((name, mode), Aggregate()),
    )
    benchmark.extra_info["round"] = round_number + 1


@pytest.mark.parametrize("mode", SWEEP_MODES)
def test_rtt_sweep(benchmark, bench_config, scenario_repo, proxy, tmp_path, rtt, mode):
    conf = scenario("small", bench_config.profile)
    base = _record_base("rtt-sweep", "small", mode, conf, proxy, bench_config.profile, rtt_ms=rtt)
    done = [
        r
        for r in RECORDS
        if r["kind"] == "epoch" and r["scenario"] == "small" and r["mode"] == mode
    ]
    if rtt == proxy.rtt_ms and done:  # measured by test_first_epoch in this session
        RECORDS.append({**done[0], **base, "reused": "test_first_epoch"})
        benchmark.extra_info.update(RECORDS[-1])
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        benchmark.group = f"rtt-sweep-small-{rtt}ms (reused; not a measurement)"
        return
    repo = scenario_repo("small", conf)
    benchmark.group = f"rtt-sweep-small-{rtt}ms"
    saved = proxy.rtt_ms
    proxy.rtt_ms = rtt  # the proxy reads it for every chunk
    try:
        _measure(
            benchmark,
            repo,
            proxy,
            conf,
            mode,
            bench_config.rounds,
            epochs=1,
            tmp_path=tmp_path,
            base=base,
        )
    finally:
        proxy.rtt_ms = saved


def test_jobs_sweep(benchmark, bench_config, scenario_repo, proxy, tmp_path, name, jobs):
    conf = scenario(name, bench_config.profile)
    repo = scenario_repo(name, conf)
    benchmark.group = f"jobs-sweep-{name}"
    _measure(
        benchmark,
        repo,
        proxy,
        conf,
        "stream",
        bench_config.rounds,
        epochs=1,
        tmp_path=tmp_path,
        base=_record_base(
            "jobs-sweep", name, "stream", conf, proxy, bench_config.profile, jobs=jobs
        ),
        options=("-j", str(jobs)),
    )
