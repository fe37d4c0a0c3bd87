"""Scale: a tracked directory of 1,000,000 entries, never pulled.

The ``.dir`` is synthetic (1,000 subdirectories of 1,000 files sharing four objects), so the remote
stays small and what is measured is the manifest, not the transfer. One ``dvc stream`` run of a
probe program measures, from the launch of ``dvc stream``:

- the first byte of the first file (target: at most 10 s);
- the broker's peak RSS (target: at most 1.5 GB), read from ``/proc`` by the probe at its end;
- listing a 1,000-file subdirectory after the first listing (target: at most 50 ms).

Run with ``pytest benchmarks/test_scale.py --benchmark-only``; ``--quick`` uses 100,000 entries,
``--smoke`` 2,000.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from bench_lib import (
    check,
    dvc_cmd,
    last_json,
    record_micro,
    run_measured,
    write_synthetic_dataset,
)

ENTRIES = 1_000_000
QUICK_ENTRIES = 100_000
SMOKE_ENTRIES = 2_000
SUBDIRS = 1_000
TARGET_FIRST_BYTE_S = 10.0
TARGET_RSS_MB = 1536
TARGET_LISTING_MS = 50.0

PROBE = """\
import json, os, sys, time
launched = float(sys.argv[1])
first = os.path.join("data", "images", "d000", "f0000000.bin")
with open(first, "rb") as f:
    f.read(1)
first_byte_s = time.time() - launched

def timed_listing(name):
    start = time.perf_counter()
    names = os.listdir(os.path.join("data", "images", name))
    return (time.perf_counter() - start) * 1000, len(names)

top_ms, ndirs = timed_listing("")
first_ms, n1 = timed_listing("d001")
other_ms, n2 = timed_listing("d002")
again_ms, _ = timed_listing("d001")
status = open(f"/proc/{os.getppid()}/status").read()
rss_kb = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps({
    "first_byte_s": first_byte_s, "top_listing_ms": top_ms, "subdirs": ndirs,
    "first_listing_ms": first_ms, "next_listing_ms": other_ms, "repeat_listing_ms": again_ms,
    "files_listed": n2, "broker_peak_rss_mb": rss_kb / 1024,
}))
"""


@pytest.fixture(scope="module")
def big_clone(moto_server, proxy, tmp_path_factory, bench_config):
    from dvc_stream.testing import make_repo

    entries = bench_config.pick(ENTRIES, QUICK_ENTRIES, SMOKE_ENTRIES)
    base = tmp_path_factory.mktemp("scale")
    origin = make_repo(base / "origin", moto_server)
    write_synthetic_dataset(origin, moto_server, entries, fanout=SUBDIRS)
    clone = origin.clone(base / "clone")
    clone.set_endpoint(proxy.endpoint_url)
    (clone.root / "probe.py").write_text(PROBE)
    return clone, entries


def test_scale_million_entries(benchmark, big_clone):
    clone, entries = big_clone

    def run() -> dict:
        clone.wipe()
        launched = time.time()
        args = dvc_cmd("stream", "-q", "--", sys.executable, "probe.py", str(launched))
        proc = check(run_measured(args, clone.root, clone.env))
        return last_json(proc.stdout)

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    result["entries"] = entries
    benchmark.extra_info.update(result)
    print(json.dumps(result))
    assert result["files_listed"] == entries // SUBDIRS
    _record(
        f"scale, {entries:,} entries: first byte of the first file",
        result["first_byte_s"],
        TARGET_FIRST_BYTE_S,
        "s",
        "from the launch of `dvc stream`: manifest, .dir download and parse, first fetch",
    )
    _record(
        f"scale, {entries:,} entries: broker peak RSS",
        result["broker_peak_rss_mb"],
        TARGET_RSS_MB,
        "MB",
        "VmHWM of the `dvc stream` process",
    )
    _record(
        f"scale, {entries:,} entries: listing a {entries // SUBDIRS:,}-file subdirectory",
        result["next_listing_ms"],
        TARGET_LISTING_MS,
        "ms",
        f"after the first listing; the first one took {result['first_listing_ms']:.1f} ms, "
        f"the top level ({result['subdirs']:,} dirs) {result['top_listing_ms']:.1f} ms",
    )


def _record(case: str, value: float, target: float, unit: str, detail: str) -> None:
    verdict = "meets" if value <= target else "misses"
    result = f"{value:.2f} {unit} ({verdict} target <= {target:g} {unit})"
    record_micro(case, result, detail, value=value, target=target)
