"""benchmarks/ratios.py: the first-epoch ratios of a summary, complete and against a baseline."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ratios.py"


@pytest.fixture(scope="module")
def ratios():
    spec = importlib.util.spec_from_file_location("bench_ratios", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def epoch(scenario: str, mode: str, epoch_s: float, nfiles: int = 600) -> dict:
    return {
        "kind": "epoch",
        "scenario": scenario,
        "mode": mode,
        "epoch_s": epoch_s,
        "nfiles": nfiles,
        "file_size": 8192,
        "rtt_ms": 20.0,
        "profile": "quick",
    }


def summary(stream_s: float = 6.0, nfiles: int = 600) -> list[dict]:
    return [
        epoch("small", "pull", 10.0, nfiles),
        epoch("small", "stream", stream_s, nfiles),
        epoch("small", "dvc-api", 30.0, nfiles),
        epoch("small", "pull-torch", 12.0, nfiles),
        epoch("small", "stream-torch", 6.0, nfiles),
        {"kind": "micro", "case": "start-up", "result": "0.3 ms"},
    ]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, check=False
    )


def write(path: Path, records) -> Path:
    path.write_text(json.dumps(records))
    return path


def test_ratios_are_against_the_pull_of_the_same_program(ratios):
    records = summary()
    ratios.add_ratios(records)
    by_mode = {r["mode"]: r for r in records if r["kind"] == "epoch"}
    assert by_mode["stream"]["epoch_vs_pull"] == 0.6
    assert by_mode["stream-torch"]["pull_mode"] == "pull-torch"
    assert by_mode["stream-torch"]["epoch_vs_pull"] == 0.5
    assert by_mode["pull"]["epoch_vs_pull"] == 1.0


def test_missing_rows_and_ratios_are_named(ratios):
    records = summary()[1:]  # the pull row is lost: stream has no ratio
    ratios.add_ratios(records)
    expected = {("small", "pull"), ("small", "stream"), ("small", "stream-torch")}
    expected |= {("small", "pull-torch"), ("large", "stream")}
    assert ratios.missing_rows(records, expected) == [
        "large/stream: no row",
        "small/pull: no row",
        "small/stream: no epoch_vs_pull ratio",
    ]


def test_a_mode_run_without_its_pull_needs_no_ratio(ratios):
    records = summary()[1:2]  # `-k stream`: no pull was run
    ratios.add_ratios(records)
    assert ratios.missing_rows(records, {("small", "stream")}) == []


def test_update_then_check_the_same_run(tmp_path):
    baseline = tmp_path / "baseline.json"
    run_file = write(tmp_path / "summary.json", summary())
    assert run("update", run_file, "--baseline", baseline).returncode == 0
    written = json.loads(baseline.read_text())
    assert written["ratios"] == {"small/stream": 0.6, "small/stream-torch": 0.5}
    assert written["profile"] == "quick"
    proc = run("check", run_file, "--baseline", baseline)
    assert proc.returncode == 0, proc.stderr
    assert "| small/stream | 0.60 | 0.60 | +0% ok |" in proc.stdout


def test_a_ratio_past_the_threshold_fails(tmp_path):
    baseline = tmp_path / "baseline.json"
    run("update", write(tmp_path / "before.json", summary(stream_s=6.0)), "--baseline", baseline)
    within = write(tmp_path / "within.json", summary(stream_s=7.0))
    assert run("check", within, "--baseline", baseline, "--threshold", "0.2").returncode == 0
    worse = write(tmp_path / "worse.json", summary(stream_s=8.0))
    proc = run("check", worse, "--baseline", baseline, "--threshold", "0.2")
    assert proc.returncode == 1
    assert "small/stream: epoch / pull 0.80 against 0.60 in the baseline (+33%" in proc.stderr
    assert "REGRESSED" in proc.stdout


def test_a_missing_row_or_other_data_fails(tmp_path):
    baseline = tmp_path / "baseline.json"
    run("update", write(tmp_path / "before.json", summary()), "--baseline", baseline)
    no_torch = write(tmp_path / "no-torch.json", summary()[:3])
    proc = run("check", no_torch, "--baseline", baseline)
    assert proc.returncode == 1
    assert "small/stream-torch: in the baseline, not in this run" in proc.stderr
    bigger = write(tmp_path / "full.json", summary(nfiles=5000))
    proc = run("check", bigger, "--baseline", baseline)
    assert proc.returncode == 1
    assert "scenario small: this run measured" in proc.stderr


def test_an_unreadable_summary_is_one_line(tmp_path):
    proc = run("check", tmp_path / "nope.json", "--baseline", tmp_path / "baseline.json")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "cannot read" in proc.stderr


def test_the_baseline_of_several_runs_holds_each_rows_highest_ratio(tmp_path):
    baseline = tmp_path / "baseline.json"
    first = write(tmp_path / "1.json", summary(stream_s=6.0))
    second = write(tmp_path / "2.json", summary(stream_s=7.0))
    assert run("update", first, second, "--baseline", baseline).returncode == 0
    assert json.loads(baseline.read_text())["ratios"]["small/stream"] == 0.7
    other = write(tmp_path / "3.json", summary(nfiles=5000))
    proc = run("update", first, other, "--baseline", baseline)
    assert proc.returncode == 1
    assert "the runs measured other data" in proc.stderr
