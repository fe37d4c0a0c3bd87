"""The first-epoch ratios of a benchmark run: complete, and no worse than the baseline.

Each first-epoch record of ``summary.json`` carries ``epoch_vs_pull``: its epoch divided by the
epoch of the ``dvc pull`` mode it is compared with, in the same run. Ratios, not seconds, are
compared with a baseline, since machines differ but both sides of a ratio run on the same one.

    python benchmarks/ratios.py check results/quick/summary.json            # against baseline.json
    python benchmarks/ratios.py check SUMMARY --baseline FILE --threshold 0.3
    python benchmarks/ratios.py update run1/summary.json run2/summary.json  # rewrite baseline.json

``check`` exits with 1 when a streaming mode's ratio is above its baseline by more than the
threshold (relative: 0.3 fails 0.65 -> 0.85), when a baseline row is missing from the run, or when
the run measured other data than the baseline (a full run against a ``--quick`` baseline).
``update`` keeps each row's highest ratio over the runs it is given.
Standard library only: a CI job can run it without the project installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BASELINE = Path(__file__).resolve().parent / "baseline.json"
DEFAULT_THRESHOLD = 0.3
COMPARED_PREFIX = "stream"  # the modes checked against the baseline: dvc-stream's own


def pull_mode(mode: str) -> str:
    """The ``dvc pull`` + training mode that ``mode`` is compared with: the same program."""
    return "pull-torch" if mode.endswith("-torch") else "pull"


def add_ratios(records: list[dict]) -> None:
    """Set ``epoch_vs_pull`` (and ``pull_mode``) on every first-epoch record that has its pull."""
    epochs = {(r["scenario"], r["mode"]): r for r in records if r.get("kind") == "epoch"}
    for (name, mode), record in epochs.items():
        pull = epochs.get((name, pull_mode(mode)))
        if pull is not None and record.get("epoch_s") and pull.get("epoch_s"):
            record["pull_mode"] = pull_mode(mode)
            record["epoch_vs_pull"] = round(record["epoch_s"] / pull["epoch_s"], 4)


def missing_rows(records: list[dict], expected: set[tuple[str, str]]) -> list[str]:
    """What ``records`` lacks of the ``(scenario, mode)`` first-epoch rows in ``expected``: the
    row, its epoch, and its ratio where its pull mode is expected too."""
    epochs = {(r["scenario"], r["mode"]): r for r in records if r.get("kind") == "epoch"}
    problems = []
    for name, mode in sorted(expected):
        record = epochs.get((name, mode))
        if record is None:
            problems.append(f"{name}/{mode}: no row")
        elif not isinstance(record.get("epoch_s"), (int, float)):
            problems.append(f"{name}/{mode}: no epoch_s")
        elif (name, pull_mode(mode)) in expected and not isinstance(
            record.get("epoch_vs_pull"), (int, float)
        ):
            problems.append(f"{name}/{mode}: no epoch_vs_pull ratio")
    return problems


def baseline_of(records: list[dict]) -> dict:
    """The baseline document for a run: its streaming ratios and the data they were measured on."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    return {
        "profile": _profile(epochs),
        "scenarios": {
            r["scenario"]: {
                "nfiles": r["nfiles"],
                "file_size": r["file_size"],
                "rtt_ms": r["rtt_ms"],
            }
            for r in epochs
        },
        "ratios": {
            f"{r['scenario']}/{r['mode']}": r["epoch_vs_pull"]
            for r in epochs
            if r["mode"].startswith(COMPARED_PREFIX) and "epoch_vs_pull" in r
        },
    }


def _profile(epochs: list[dict]) -> str:
    profiles = {r.get("profile") or ("quick" if r.get("quick") else "full") for r in epochs}
    return ",".join(sorted(profiles))


def compare(records: list[dict], baseline: dict, threshold: float) -> tuple[list[str], list[str]]:
    """(table lines, failures): each baseline ratio against this run's."""
    run = baseline_of(records)
    failures = _other_data(run, baseline)
    if not baseline.get("ratios"):
        failures.append("the baseline holds no ratios")
    lines = ["| row | baseline | now | change |", "|---|---|---|---|"]
    for key, before in sorted(baseline.get("ratios", {}).items()):
        now = run["ratios"].get(key)
        if now is None:
            failures.append(f"{key}: in the baseline, not in this run")
            lines.append(f"| {key} | {before:.2f} | - | missing |")
            continue
        change = now / before - 1
        if change > threshold:
            failures.append(
                f"{key}: epoch / pull {now:.2f} against {before:.2f} in the baseline "
                f"({change:+.0%}, threshold +{threshold:.0%})"
            )
        verdict = "REGRESSED" if change > threshold else "ok"
        lines.append(f"| {key} | {before:.2f} | {now:.2f} | {change:+.0%} {verdict} |")
    new = [key for key in run["ratios"] if key not in baseline.get("ratios", {})]
    lines += [f"| {key} | - | {run['ratios'][key]:.2f} | new |" for key in new]
    return lines, failures


def _other_data(run: dict, baseline: dict) -> list[str]:
    problems = []
    if run["profile"] != baseline["profile"]:
        problems.append(f"this run is '{run['profile']}', the baseline '{baseline['profile']}'")
    for name, shape in baseline["scenarios"].items():
        if name in run["scenarios"] and run["scenarios"][name] != shape:
            problems.append(
                f"scenario {name}: this run measured {run['scenarios'][name]}, "
                f"the baseline {shape}"
            )
    return problems


def _load(path: Path) -> list[dict] | dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"ratios.py: cannot read '{path}': {exc}") from None


def merged_baseline(runs: list[list[dict]]) -> dict:
    """The baseline of several runs of the same data: each row's highest ratio, so that the
    noise between runs is inside the baseline rather than a failure."""
    merged = baseline_of(runs[0])
    for records in runs[1:]:
        other = baseline_of(records)
        problems = _other_data(other, merged)
        if problems:
            raise SystemExit(f"ratios.py: the runs measured other data: {problems[0]}")
        for key, ratio in other["ratios"].items():
            merged["ratios"][key] = max(ratio, merged["ratios"].get(key, ratio))
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["check", "update"])
    parser.add_argument(
        "summary", type=Path, nargs="+", help="summary.json of a run (update: of one or more)"
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"relative rise of a ratio that fails the check (default {DEFAULT_THRESHOLD})",
    )
    args = parser.parse_args(argv)
    runs = [_load(path) for path in args.summary]
    for records in runs:
        add_ratios(records)  # NOTE: a summary.json written before the ratios were stored in it
    if args.action == "update":
        args.baseline.write_text(json.dumps(merged_baseline(runs), indent=2) + "\n")
        print(f"wrote {args.baseline}")
        return 0
    if len(runs) > 1:
        parser.error("check takes one summary.json")
    lines, failures = compare(runs[0], _load(args.baseline), args.threshold)
    print("\n".join(lines))
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
