"""Options, shared fixtures and the end-of-session summary of the benchmark suite."""

from __future__ import annotations

import compileall
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench_lib import MICRO, RECORDS, background_window, results_dir
from ratios import add_ratios, missing_rows, pull_mode


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dvc-stream benchmarks")
    group.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="reduced datasets and one run per case (the whole suite in under 8 minutes)",
    )
    group.addoption(
        "--smoke",
        action="store_true",
        default=False,
        help="tiny datasets, one run per case: every benchmark works and the summary is "
        "complete (a minute or two; the numbers mean nothing)",
    )
    group.addoption(
        "--rtt-ms", type=float, default=20.0, help="round trip added by the proxy (default 20)"
    )
    group.addoption(
        "--bandwidth-mbit",
        type=float,
        default=None,
        help="downstream bandwidth cap of the proxy (default: none)",
    )
    group.addoption(
        "--bench-rounds",
        type=int,
        default=None,
        help="runs per case (default 3, 1 with --quick or --smoke)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--quick", False) and config.getoption("--smoke", False):
        raise pytest.UsageError("--quick and --smoke exclude each other")
    # NOTE: before pytest-benchmark reads it: its JSON goes beside this run's summary.
    if config.getoption("benchmark_json", None) is None and config.getoption("benchmark_only"):
        out_dir = results_dir(profile_option(config))
        out_dir.mkdir(parents=True, exist_ok=True)
        config.option.benchmark_json = out_dir / "pytest-benchmark.json"
    _compile_package()


def _compile_package() -> None:
    """Give dvc-stream's modules their bytecode, as an installed package has it.

    NOTE: pip compiles a package it installs, and an editable install writes the bytecode at
    its first run, unless PYTHONDONTWRITEBYTECODE is set: then every `dvc stream` of the suite,
    and every process it starts, compiled dvc-stream (and the hooks) from source, about 0.1 s
    per run that `dvc pull`, whose packages are compiled, did not pay.
    """
    import dvc_stream

    compileall.compile_dir(Path(dvc_stream.__file__).parent, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # NOTE: the project's ini sets a 300 s per-test timeout; a full-size case runs 3 cold epochs.
    for item in items:
        item.add_marker(pytest.mark.timeout(7200))


def profile_option(config: pytest.Config) -> str:
    """``full``, ``quick`` or ``smoke``: the sizes the benchmarks use."""
    if config.getoption("--smoke"):
        return "smoke"
    return "quick" if config.getoption("--quick") else "full"


@dataclass
class BenchConfig:
    profile: str
    rtt_ms: float
    bandwidth_mbit: float | None
    rounds: int

    @property
    def quick(self) -> bool:
        """Reduced sizes: ``--quick``, and ``--smoke`` below it."""
        return self.profile != "full"

    @property
    def smoke(self) -> bool:
        return self.profile == "smoke"

    def pick(self, full, quick, smoke=None):
        """The value for this run's profile (``smoke`` defaults to ``quick``'s)."""
        if self.smoke and smoke is not None:
            return smoke
        return quick if self.quick else full


def rounds_option(config: pytest.Config) -> int:
    from test_epoch import ROUNDS

    reduced = profile_option(config) != "full"
    return config.getoption("--bench-rounds") or (1 if reduced else ROUNDS)


@pytest.fixture(scope="session")
def bench_config(pytestconfig: pytest.Config) -> BenchConfig:
    return BenchConfig(
        profile=profile_option(pytestconfig),
        rtt_ms=pytestconfig.getoption("--rtt-ms"),
        bandwidth_mbit=pytestconfig.getoption("--bandwidth-mbit"),
        rounds=rounds_option(pytestconfig),
    )


@pytest.fixture(scope="session")
def proxy(moto_server, bench_config):
    """The latency proxy in front of the session's moto server."""
    from dvc_stream.testing import LatencyProxy

    with LatencyProxy(
        moto_server.host,
        moto_server.port,
        rtt_ms=bench_config.rtt_ms,
        bandwidth_mbit=bench_config.bandwidth_mbit,
    ) as p:
        yield p


@pytest.fixture(scope="session")
def scenario_repo(moto_server, proxy, tmp_path_factory):
    """``scenario_repo(name, conf)``: a clone (pulled nothing) of a repo whose dataset is pushed.

    The origin pushes straight to moto; the clone reaches the remote through the proxy.
    Built once per scenario and session.
    """
    from dvc_stream.testing import make_repo

    repos = {}

    def get(name: str, conf: dict):
        if name not in repos:
            base = tmp_path_factory.mktemp(f"scenario-{name}")
            origin = make_repo(base / "origin", moto_server)
            origin.make_dataset(
                "data/images",
                nfiles=conf["nfiles"],
                size=conf["size"],
                depth=1,
                fanout=conf["fanout"],
                push=True,
            )
            clone = origin.clone(base / "clone")
            clone.set_endpoint(proxy.endpoint_url)
            repos[name] = clone
        return repos[name]

    return get


# -- summary -------------------------------------------------------------------------------


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mb(value) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def _epoch_tables(records: list[dict]) -> list[str]:
    lines: list[str] = []
    by_scenario: dict[str, list[dict]] = {}
    for rec in records:
        by_scenario.setdefault(rec["scenario"], []).append(rec)
    for name, recs in by_scenario.items():
        first = recs[0]
        lines += [
            f"### {name}: {first['nfiles']} files x {first['file_size'] // 1024} KB, "
            f"RTT {first['rtt_ms']:g} ms"
            + (f", {first['bandwidth_mbit']:g} Mbit/s" if first.get("bandwidth_mbit") else "")
            + f", {first['runs']} run(s)",
            "",
            "| mode | ttfb s | epoch s (min-max) | epoch / pull | fetch s | checkout s "
            "| warm epoch s | MB fetched | fetched / read | requests | peak RSS MB | CPU s "
            "| server CPU s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in recs:
            lines.append(
                f"| {r['mode']} | {_fmt(r['ttfb_s'])} | {_fmt(r['epoch_s'])} "
                f"({_fmt(r['epoch_s_min'])}-{_fmt(r['epoch_s_max'])}) "
                f"| {_fmt(r.get('epoch_vs_pull'))} "
                f"| {_fmt(r.get('fetch_s'))} | {_fmt(r.get('checkout_s'))} "
                f"| {_fmt(r.get('warm_epoch_s'))} | {_mb(r.get('bytes_fetched'))} "
                f"| {_fetched_per_read(r)} | {_fmt(r.get('requests'))} "
                f"| {_fmt(r.get('peak_rss_mb'), 0)} "
                f"| {_fmt(r.get('cpu_s'), 1)} | {_fmt(r.get('server_cpu_s'), 1)} |"
            )
        lines.append("")
    return lines


def _fetched_per_read(record: dict) -> str:
    """Bytes sent down / bytes the first epoch read, then (files downloaded / files read)."""
    read = record.get("bytes_read")
    ratio = _fmt(record["bytes_fetched"] / read) if read and "bytes_fetched" in record else "-"
    files = record.get("files_fetched")
    return ratio if files is None else f"{ratio} ({files}/{record['files']})"


# Epoch / pull targets per scenario (the prefetch issue's table); the other targets hold for all.
EPOCH_TARGETS = {"small": 1.0, "large": 0.7, "subset": 0.25, "listed-subset": 0.3}
TARGET_MODES = ("stream", "stream-hint", "stream-torch")


def _targets_table(records: list[dict]) -> list[str]:
    """Each streaming mode against the targets: epoch / pull, ttfb, and the overlap bound.

    The bound is 1.2 x max(`dvc fetch` alone, pure compute) + ttfb: the fetch time of what the
    program reads (the `pull-subset` row if there is one, else `pull`) and the warm second epoch
    (the program on local data).
    """
    rows: list[str] = []
    for name, target in EPOCH_TARGETS.items():
        by_mode = {r["mode"]: r for r in records if r["scenario"] == name}
        for mode in TARGET_MODES:
            r, pull = by_mode.get(mode), by_mode.get(pull_mode(mode))
            if r is None or pull is None or r.get("epoch_vs_pull") is None:
                continue
            fetch_s = by_mode.get("pull-subset", pull)["fetch_s"]
            ratio = r["epoch_vs_pull"]
            bound = 1.2 * max(fetch_s, pull["warm_epoch_s"] or 0) + r["ttfb_s"]
            rows.append(
                f"| {name} | {mode} | {_verdict(ratio, target)} | <= {target:g} "
                f"| {_verdict(r['ttfb_s'], 0.1 * pull['epoch_s'])} | {0.1 * pull['epoch_s']:.2f} "
                f"| {_verdict(r['epoch_s'], bound)} | {bound:.2f} "
                f"| {r['bytes_fetched'] / r['bytes_read']:.2f} |"
            )
    if not rows:
        return []
    return [
        "### Targets (20 ms RTT scenarios)",
        "",
        "| scenario | mode | epoch / pull | target | ttfb s | 0.1 x pull epoch "
        "| epoch s | 1.2 max(fetch, compute) + ttfb | fetched / read |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "`ok`: the target holds; `MISS`: it does not.",
        "",
    ]


def _verdict(value: float, limit: float) -> str:
    return f"{value:.2f} {'ok' if value <= limit else 'MISS'}"


def _sweep_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    modes = list(dict.fromkeys(r["mode"] for r in records))
    rtts = sorted({r["rtt_ms"] for r in records})
    first = records[0]
    lines = [
        f"### RTT sweep, small scenario ({first['nfiles']} files x "
        f"{first['file_size'] // 1024} KB), first epoch from a cold start, seconds",
        "",
        "| RTT ms | " + " | ".join([*modes, *(f"{m} / pull" for m in modes[1:])]) + " |",
        "|---|" + "---|" * (2 * len(modes) - 1),
    ]
    for rtt in rtts:
        row = {r["mode"]: r for r in records if r["rtt_ms"] == rtt}
        pull = row.get("pull", {}).get("epoch_s")
        cells = [_fmt(row.get(m, {}).get("epoch_s")) for m in modes]
        ratios = [_fmt(row[m]["epoch_s"] / pull) if pull and m in row else "-" for m in modes[1:]]
        lines.append(f"| {rtt:g} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines += ["", "A ratio below 1.00 means that mode finished the first epoch before `pull`.", ""]
    return lines


def _jobs_tables(records: list[dict], epoch: list[dict]) -> list[str]:
    """The ``-j`` sweep of each scenario, with this run's ``pull`` and ``stream-naive``."""
    lines: list[str] = []
    for name in dict.fromkeys(r["scenario"] for r in records):
        by_mode = {r["mode"]: r for r in epoch if r["scenario"] == name}
        pull = by_mode.get("pull", {}).get("epoch_s")
        naive = by_mode.get("stream-naive")
        rows = ([("naive", 0, naive)] if naive else []) + [
            (str(r["jobs"]), background_window(r), r) for r in records if r["scenario"] == name
        ]
        lines += [
            f"### Downloads in flight, {name} scenario, unhinted `dvc stream -j N`",
            "",
            "| -j | background window | epoch s (min-max) | epoch / pull | ttfb s "
            "| files fetched on demand | wait per demand fetch ms | objects/s |",
            "|---|---|---|---|---|---|---|---|",
            *(_jobs_row(label, window, r, pull) for label, window, r in rows),
            "",
        ]
    if lines:
        lines += [
            "One epoch per run (no warm epoch). naive: `--prefetch none`. background window: the "
            "background downloads in flight, as bounded by `-j` and by `-j` x 160 KiB of bytes. "
            "objects/s: files fetched / `fetch_seconds`. A wider background window fills faster "
            "but makes each of the program's own misses wait longer at the server.",
            "",
        ]
    return lines


def _jobs_row(label: str, window, r: dict, pull: float | None) -> str:
    demand = r.get("stream_demand_files")
    wait = r.get("stream_wait_seconds")
    fetch_s = r.get("stream_fetch_seconds")
    fetched = (demand or 0) + (r.get("stream_prefetched_files") or 0)
    return (
        f"| {label} | {_fmt(window)} | {_fmt(r['epoch_s'])} "
        f"({_fmt(r['epoch_s_min'])}-{_fmt(r['epoch_s_max'])}) "
        f"| {_fmt(r['epoch_s'] / pull) if pull else '-'} | {_fmt(r['ttfb_s'])} "
        f"| {_fmt(demand)} | {_fmt(1000 * wait / demand if demand and wait else None, 1)} "
        f"| {_fmt(fetched / fetch_s if fetch_s else None, 0)} |"
    )


def _micro_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    lines = ["### Micro-benchmarks", "", "| case | result | detail |", "|---|---|---|"]
    for r in records:
        lines.append(f"| {r['case']} | {r['result']} | {r.get('detail', '')} |")
    lines.append("")
    return lines


def write_summary(records: list[dict], micro: list[dict], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    add_ratios(records)
    (out_dir / "summary.json").write_text(
        json.dumps(records + micro, indent=2, sort_keys=False) + "\n"
    )
    epoch = [r for r in records if r.get("kind") == "epoch"]
    sweep = [r for r in records if r.get("kind") == "rtt-sweep"]
    jobs = [r for r in records if r.get("kind") == "jobs-sweep"]
    profiles = sorted({r["profile"] for r in records if r.get("profile", "full") != "full"})
    lines = [
        "# dvc-stream benchmark summary" + "".join(f" (--{p})" for p in profiles),
        "",
        "Cold start for every run (workspace data, `.dvc/cache`, site cache wiped); moto S3 on "
        "127.0.0.1 behind the latency proxy. Medians over the runs. `ttfb`/`epoch`: from the "
        "cold start to the first batch / the end of the first epoch, pull included. "
        "`dvc-api` reads through one `DVCFileSystem` per worker (`fs.open`, what "
        "`dvc.api.open` calls); per-file `dvc.api.open` is in the micro-benchmarks. "
        "See benchmarks/README.md.",
        "",
    ]
    lines += _epoch_tables(epoch) + _targets_table(epoch) + _sweep_table(sweep)
    lines += _jobs_tables(jobs, epoch)
    lines += _micro_table(micro)
    (out_dir / "summary.md").write_text("\n".join(lines))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not (RECORDS or MICRO or _EPOCHS_RUN):
        return
    out_dir = results_dir(profile_option(session.config))
    write_summary(RECORDS, MICRO, out_dir)
    problems = missing_rows(json.loads((out_dir / "summary.json").read_text()), _EPOCHS_RUN)
    if problems:
        # NOTE: every first-epoch case that passed must have its row and its ratio to pull.
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line("")
        for problem in problems:
            reporter.write_line(f"ERROR: {out_dir / 'summary.json'}: {problem}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_EPOCHS_RUN: set[tuple[str, str]] = set()  # (scenario, mode) of the first-epoch cases passed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call" and report.passed and item.originalname == "test_first_epoch":
        _EPOCHS_RUN.add((item.callspec.params["name"], item.callspec.params["mode"]))
    return report
