"""Helpers shared by the benchmark modules: timed child processes, cold starts, records."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN = HERE / "train.py"


def results_dir(profile: str) -> Path:
    """Where a run writes its summary: ``$DVC_STREAM_BENCH_RESULTS``, else ``results/`` for a
    full run and ``results/quick/`` or ``results/smoke/``, so that neither overwrites it."""
    if os.environ.get("DVC_STREAM_BENCH_RESULTS"):
        return Path(os.environ["DVC_STREAM_BENCH_RESULTS"])
    return HERE / "results" if profile == "full" else HERE / "results" / profile


# Filled by the benchmarks, written out by conftest.pytest_sessionfinish.
RECORDS: list[dict] = []
MICRO: list[dict] = []


@dataclass
class Proc:
    """What one child process cost: wall time, rc, output, rusage of it and its descendants."""

    args: list[str]
    rc: int
    wall_s: float
    stdout: str
    stderr: str
    cpu_s: float
    maxrss_mb: float


# NOTE: a child forked from this (big) pytest process inherits its RSS high-water mark across
# exec (Linux accounts the pre-exec mm), so ru_maxrss measured directly would be the harness's.
# A tiny wrapper interpreter runs the command and reports RUSAGE_CHILDREN: peak RSS of the
# biggest descendant, CPU of all of them, none of its own.
_WRAPPER = """\
import json, resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"cpu_s": u.ru_utime + u.ru_stime, "maxrss_kb": u.ru_maxrss}, f)
sys.exit(rc)
"""


def run_measured(args: list[str], cwd: Path, env: dict, timeout: float = 3600) -> Proc:
    """Run ``args`` under the rusage wrapper; returns its wall time, output and rusage."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    out_path = cwd.parent / f".bench-out-{tag}"
    err_path = cwd.parent / f".bench-err-{tag}"
    usage_path = cwd.parent / f".bench-usage-{tag}.json"
    wrapped = [sys.executable, "-S", "-c", _WRAPPER, str(usage_path), *args]
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    usage = json.loads(usage_path.read_text()) if usage_path.exists() else {}
    for path in (out_path, err_path, usage_path):
        path.unlink(missing_ok=True)
    return Proc(
        args=args,
        rc=rc,
        wall_s=wall,
        stdout=stdout,
        stderr=stderr,
        cpu_s=usage.get("cpu_s", float("nan")),
        maxrss_mb=usage.get("maxrss_kb", float("nan")) / 1024.0,
    )


def check(proc: Proc) -> Proc:
    if proc.rc != 0:
        shown = proc.args[2:] if proc.args[0] == sys.executable else proc.args
        raise AssertionError(
            f"command failed (rc={proc.rc}): {shown}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc


def dvc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON result in output:\n{text[-4000:]}")


def record_micro(case: str, result: str, detail: str = "", **values) -> dict:
    """Add a row to the summary's micro-benchmark table."""
    rec = {"kind": "micro", "case": case, "result": result, "detail": detail, **values}
    MICRO.append(rec)
    return rec


def background_window(record: dict) -> int | None:
    """How many background downloads a ``dvc stream`` run kept in flight, for its file size.

    The lesser of the window of downloads and the files that fit the window of bytes (a run
    starts another while under it), never fewer than two; from the run's ``--stats``.
    """
    window = record.get("stream_background_window")
    max_bytes = record.get("stream_background_bytes")
    if window is None or not max_bytes:
        return window
    return max(2, min(window, -(-max_bytes // record["file_size"])))


def self_cpu() -> float:
    """CPU time of this process: the moto server and the proxy run on its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Aggregate:
    """Per-run metrics of one scenario x mode, reduced to medians and spreads."""

    runs: list[dict] = field(default_factory=list)

    def add(self, metrics: dict) -> None:
        self.runs.append(metrics)

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    def spread(self, key: str) -> tuple[float | None, float | None]:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return (min(values), max(values)) if values else (None, None)

    def record(self, **base) -> dict:
        keys: list[str] = []
        for run in self.runs:
            keys += [k for k in run if k not in keys and isinstance(run[k], (int, float))]
        rec = dict(base)
        rec["runs"] = len(self.runs)
        for key in keys:
            value = self.median(key)
            rec[key] = round(value, 4) if isinstance(value, float) else value
        for key in ("epoch_s", "ttfb_s"):
            lo, hi = self.spread(key)
            rec[f"{key}_min"] = None if lo is None else round(lo, 4)
            rec[f"{key}_max"] = None if hi is None else round(hi, 4)
        return rec


# Set-up objects go straight to moto (no proxy), this many at a time. moto runs in this process,
# so the GIL caps the gain (about 340 objects/s against 290 one at a time): 20,000 take a minute.
UPLOAD_THREADS = 16


def write_synthetic_dataset(
    repo,
    moto_server,
    entries: int,
    fanout: int,
    objects: int | None = 4,
    object_size: int = 1024,
    path: str = "data/images",
) -> None:
    """Track ``path`` as ``entries`` files over ``fanout`` subdirectories.

    The entries share ``objects`` objects (round-robin), so a tree of a million entries takes
    seconds to set up and the remote stays small; with ``objects=None`` every entry has its own
    object, as in a real dataset, so that pulling it costs what a user's ``dvc pull`` would.
    The objects and the ``.dir`` (built with dvc-data's ``Tree``) go straight to the remote and
    the ``.dvc`` file is written by hand. Committed; nothing is in the workspace or the cache.
    """
    from concurrent.futures import ThreadPoolExecutor

    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    from dvc_stream.testing.repos import file_content

    bucket, prefix = repo.remote_url.removeprefix("s3://").split("/", 1)
    client = moto_server.client(max_pool_connections=UPLOAD_THREADS)

    def put(oid: str, blob: bytes) -> str:
        client.put_object(Bucket=bucket, Key=f"{prefix}/files/md5/{oid[:2]}/{oid[2:]}", Body=blob)
        return oid

    def put_object(i: int) -> str:
        blob = file_content(99, f"obj{i}", object_size)
        return put(hashlib.md5(blob).hexdigest(), blob)

    nobjects = entries if objects is None else objects
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        oids = list(pool.map(put_object, range(nobjects)))
    width = len(str(fanout - 1))
    tree = Tree()
    for i in range(entries):
        key = (f"d{i % fanout:0{width}d}", f"f{i:07d}.bin")
        tree.add(key, Meta(size=object_size), HashInfo("md5", oids[i % nobjects]))
    tree.digest()
    dir_oid = put(tree.hash_info.value, tree.as_bytes())
    parent, name = os.path.split(path)
    (repo.root / parent).mkdir(parents=True, exist_ok=True)
    (repo.root / f"{path}.dvc").write_text(
        f"outs:\n- md5: {dir_oid}\n  size: {entries * object_size}\n  nfiles: {entries}\n"
        f"  hash: md5\n  path: {name}\n"
    )
    (repo.root / parent / ".gitignore").write_text(f"/{name}\n")
    repo.git("add", parent)
    repo.commit(f"{entries:,} synthetic files")
