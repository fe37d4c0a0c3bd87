"""Micro-benchmarks: hook overhead on untracked paths, demand-fetch latency, start-up imports."""

from __future__ import annotations

import os
import re
import statistics
import sys
import textwrap
import timeit

import pytest
from bench_lib import check, dvc_cmd, last_json, record_micro, run_measured

FETCH_RTT_MS = 20.0
FETCH_TARGET_RATIO = 0.45  # dvc stream demand open / dvc.api.open, for one 4 KB file
FETCH_FILES = 12  # the first is a warm-up (connections, index); the others are timed
HOOK_REPEAT = 5  # timeit repeats; the best one counts
MICRO_ROUNDS = 3  # rounds of the hook and fetch cases (1 with --quick or --smoke); medians


# -- hook overhead on untracked paths ----------------------------------------------------------


@pytest.fixture(scope="module")
def small_repo(moto_server, tmp_path_factory):
    """A small repo with one tracked dir, and this process's env set up for in-process DVC."""
    from dvc_stream.testing import make_repo

    base = tmp_path_factory.mktemp("micro")
    repo = make_repo(base / "repo", moto_server)
    repo.make_dataset("data/images", nfiles=50, size=4096, depth=1, fanout=5, push=True)
    saved = {k: os.environ.get(k) for k in repo.env}
    os.environ.update(repo.env)
    yield repo
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def broker(small_repo):
    from dvc.repo import Repo

    from dvc_stream.hooks import patches
    from dvc_stream.stream.broker import Broker

    with patches.use_original():
        dvc_repo = Repo(str(small_repo.root))
        b = Broker(dvc_repo, jobs=4, thread_context=patches.use_original)
    yield b
    patches.uninstall()
    b.close()
    dvc_repo.close()


def _targets(where: str, small_repo, tmp_path_factory):
    if where == "in-repo":
        base = small_repo.root / "untracked"
    else:
        base = tmp_path_factory.mktemp("plain")
    base.mkdir(exist_ok=True)
    for i in range(20):
        (base / f"f{i:02d}.txt").write_bytes(os.urandom(1024))
    return base, base / "f00.txt"


OPS = {
    "open+read 1 KB": lambda d, f: open(f, "rb").read(),  # noqa: SIM115
    "os.stat": lambda d, f: os.stat(f),
    "os.listdir (20 entries)": lambda d, f: os.listdir(d),
}


@pytest.mark.parametrize("where", ["outside-repo", "in-repo"])
@pytest.mark.parametrize("op", list(OPS))
def test_hook_overhead(benchmark, bench_config, broker, small_repo, tmp_path_factory, op, where):
    """Hooked vs plain cost of one call on an untracked path (best of timeit repeats)."""
    from dvc_stream.hooks import patches

    folder, path = _targets(where, small_repo, tmp_path_factory)
    folder, path = str(folder), str(path)
    func = OPS[op]
    number = (2000 if op.startswith("open") else 20000) // (20 if bench_config.smoke else 1)
    repeat = 2 if bench_config.smoke else HOOK_REPEAT
    rounds: list[tuple[float, float]] = []

    def per_call() -> float:
        times = timeit.repeat(lambda: func(folder, path), number=number, repeat=repeat)
        return min(times) / number

    def measure() -> None:
        patches.uninstall()
        plain = per_call()
        patches.install(broker)
        try:
            hooked = per_call()
        finally:
            patches.uninstall()
        rounds.append((plain, hooked))

    benchmark.group = "micro-hooks"
    benchmark.pedantic(measure, rounds=bench_config.pick(MICRO_ROUNDS, 1), iterations=1)
    plain = statistics.median(p for p, _ in rounds)
    hooked = statistics.median(h for _, h in rounds)
    info = {
        "plain_us": round(plain * 1e6, 3),
        "hooked_us": round(hooked * 1e6, 3),
        "overhead_us": round((hooked - plain) * 1e6, 3),
        "ratio": round(hooked / plain, 3),
    }
    benchmark.extra_info.update(info)
    record_micro(
        f"hooks: {op}, untracked {where}",
        f"x{info['ratio']:.2f}",
        f"plain {info['plain_us']:.2f} us, hooked {info['hooked_us']:.2f} us "
        f"({info['overhead_us']:+.2f} us)",
        **info,
    )


# -- demand-fetch latency of one 4 KB file -----------------------------------------------------

_TIME_OPEN = textwrap.dedent(
    """\
    import json, sys, time
    times = []
    for path in sys.argv[1:]:
        t = time.perf_counter()
        with open(path, "rb") as f:
            f.read()
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times}))
    """
)

_TIME_DVC_API = textwrap.dedent(
    """\
    import json, sys, time
    import dvc.api
    from dvc.api import DVCFileSystem
    style, paths = sys.argv[1], sys.argv[2:]
    fs = DVCFileSystem(".") if style == "fs" else None
    times = []
    for path in paths:
        t = time.perf_counter()
        if fs is None:
            with dvc.api.open(path, mode="rb") as f:
                f.read()
        else:
            with fs.open(path, mode="rb") as f:
                f.read()
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times}))
    """
)


@pytest.fixture(scope="module")
def fetch_repo(moto_server, proxy, tmp_path_factory):
    from dvc_stream.testing import make_repo

    base = tmp_path_factory.mktemp("fetch")
    origin = make_repo(base / "origin", moto_server)
    origin.make_dataset("data/small", nfiles=FETCH_FILES, size=4096, depth=0, fanout=1)
    clone = origin.clone(base / "clone")
    clone.set_endpoint(proxy.endpoint_url)
    paths = sorted(f"data/small/{name}" for name in origin.tracked_files("data/small"))
    return clone, paths


def _timed_reads(repo, args: list[str]) -> list[float]:
    repo.wipe()
    proc = check(run_measured(args, repo.root, repo.env))
    return last_json(proc.stdout)["times"]


def test_demand_fetch_latency(benchmark, bench_config, fetch_repo, proxy):
    """``open().read()`` of one absent 4 KB file under ``dvc stream --prefetch none``, vs DVC."""
    repo, paths = fetch_repo
    paths = paths[:3] if bench_config.smoke else paths
    saved = proxy.rtt_ms
    proxy.rtt_ms = FETCH_RTT_MS
    results: dict[str, list[list[float]]] = {"stream": [], "dvc.api.open": [], "DVCFileSystem": []}

    def measure() -> None:
        results["stream"].append(
            _timed_reads(
                repo,
                dvc_cmd(
                    "stream", "--prefetch", "none", "--", sys.executable, "-c", _TIME_OPEN, *paths
                ),
            )
        )
        results["dvc.api.open"].append(
            _timed_reads(repo, [sys.executable, "-c", _TIME_DVC_API, "open", *paths])
        )
        results["DVCFileSystem"].append(
            _timed_reads(repo, [sys.executable, "-c", _TIME_DVC_API, "fs", *paths])
        )

    try:
        benchmark.group = "micro-fetch"
        benchmark.pedantic(measure, rounds=bench_config.pick(MICRO_ROUNDS, 1), iterations=1)
    finally:
        proxy.rtt_ms = saved
    info: dict = {"rtt_ms": FETCH_RTT_MS}
    for name, runs in results.items():
        info[f"{name}_first_ms"] = round(statistics.median(r[0] for r in runs) * 1e3, 2)
        info[f"{name}_ms"] = round(statistics.median(t for r in runs for t in r[1:]) * 1e3, 2)
    ratio = info["stream_ms"] / info["dvc.api.open_ms"]
    info["ratio_vs_dvc_api_open"] = round(ratio, 3)
    info["ratio_vs_dvcfilesystem"] = round(info["stream_ms"] / info["DVCFileSystem_ms"], 3)
    info["target_ratio"] = FETCH_TARGET_RATIO
    info["meets_target"] = ratio <= FETCH_TARGET_RATIO
    benchmark.extra_info.update(info)
    record_micro(
        "demand fetch, one 4 KB file, 20 ms RTT: stream / dvc.api.open",
        f"{ratio:.2f} ({'meets' if ratio <= FETCH_TARGET_RATIO else 'MISSES'} "
        f"target <= {FETCH_TARGET_RATIO})",
        f"stream {info['stream_ms']:.1f} ms, dvc.api.open {info['dvc.api.open_ms']:.1f} ms, "
        f"one DVCFileSystem {info['DVCFileSystem_ms']:.1f} ms (median after a warm-up file; "
        f"first file: {info['stream_first_ms']:.0f} / {info['dvc.api.open_first_ms']:.0f} / "
        f"{info['DVCFileSystem_first_ms']:.0f} ms)",
        **info,
    )


# -- interpreter start-up with the .pth --------------------------------------------------------

_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
STARTUP_RUNS = 30


def _importtime(args: list[str]) -> dict[str, int]:
    import subprocess

    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    found = {}
    for line in proc.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            found[match.group(4)] = int(match.group(2))
    return found


def test_startup_imports(benchmark, bench_config):
    """Cumulative import time of the ``.pth`` bootstrap in every interpreter of the venv."""
    import subprocess

    runs = bench_config.pick(STARTUP_RUNS, STARTUP_RUNS, 5)
    samples: list[dict[str, int]] = []

    def measure() -> None:
        samples.append(_importtime([sys.executable, "-X", "importtime", "-c", "pass"]))

    benchmark.group = "micro-startup"
    benchmark.pedantic(measure, rounds=runs, iterations=1)
    walls = []
    for _ in range(runs):
        start = timeit.default_timer()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        walls.append(timeit.default_timer() - start)
    info = {"python_c_pass_ms": round(statistics.median(walls) * 1e3, 2)}
    for module in ("dvc_stream", "dvc_stream._bootstrap", "site"):
        values = [s[module] for s in samples if module in s]
        info[f"{module}_cumulative_us"] = int(statistics.median(values)) if values else None
    benchmark.extra_info.update(info)
    record_micro(
        "start-up: .pth bootstrap import (cumulative)",
        f"{(info['dvc_stream._bootstrap_cumulative_us'] or 0) / 1000:.2f} ms",
        f"dvc_stream {(info['dvc_stream_cumulative_us'] or 0) / 1000:.2f} ms, site "
        f"{(info['site_cumulative_us'] or 0) / 1000:.2f} ms, whole `python -c pass` "
        f"{info['python_c_pass_ms']:.1f} ms (medians of {runs})",
        **info,
    )
    assert info["dvc_stream._bootstrap_cumulative_us"] is not None, "the .pth did not run"


# -- start-up of a Python process under `dvc stream` -------------------------------------------

# Run under `dvc stream`: times `python -c pass` started with the run's environment (the hooks
# load and connect to the broker) and without its hook variables (plain); prints medians, ms.
_TIME_STARTS = """
import json, os, statistics, subprocess, sys, time
plain_env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_STREAM_")}
def median_ms(env):
    walls = []
    for _ in range(int(sys.argv[1])):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls) * 1e3
print(json.dumps({"hooked_ms": median_ms(dict(os.environ)), "plain_ms": median_ms(plain_env)}))
"""


def test_hooked_process_startup(benchmark, bench_config, small_repo):
    """What the hooks add to the start of every Python process a run starts: a DataLoader's
    spawned workers, torchrun's ranks, a pipeline's stages."""
    runs = bench_config.pick(STARTUP_RUNS, STARTUP_RUNS, 5)
    results: list[dict] = []

    def measure() -> None:
        proc = check(
            run_measured(
                dvc_cmd("stream", "-j", "1", "--", sys.executable, "-c", _TIME_STARTS, str(runs)),
                small_repo.root,
                small_repo.env,
            )
        )
        results.append(last_json(proc.stdout))

    benchmark.group = "micro-startup"
    benchmark.pedantic(measure, rounds=1, iterations=1)
    info = {key: round(value, 2) for key, value in results[0].items()}
    info["added_ms"] = round(info["hooked_ms"] - info["plain_ms"], 2)
    benchmark.extra_info.update(info)
    record_micro(
        "start-up: a Python process under `dvc stream`, with / without the hooks",
        f"x{info['hooked_ms'] / info['plain_ms']:.2f}",
        f"hooked {info['hooked_ms']:.1f} ms, plain {info['plain_ms']:.1f} ms "
        f"(+{info['added_ms']:.1f} ms per process; medians of {runs})",
        **info,
    )
