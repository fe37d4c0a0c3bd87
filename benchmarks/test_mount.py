"""Micro-benchmark: what ``dvc stream --mount`` costs on files that need no download.

Reads every file of a directory with plain ``open().read()`` and times it inside the reading
process, three ways: straight from the pulled workspace (no mount), through the mount with the
workspace copy present (read through the directory fd), and through the mount with only the
cache holding the objects (opened from the cache). The reader runs with ``python -I`` (no hooks)
so that only the FUSE path is measured. Each run makes ``PASSES`` passes: the first one pays for
every lookup and open through FUSE; later passes are served by the kernel's page cache.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import textwrap

import pytest
from bench_lib import check, dvc_cmd, last_json, record_micro, run_measured

KB = 1024
DATASETS = {  # name -> (files, size); --quick uses a tenth of the files, --smoke 1 %
    "small": (2000, 8 * KB),
    "large": (16, 4 * KB * KB),
}
PASSES = 3

_READ_ALL = textwrap.dedent(
    """\
    import json, os, sys, time
    root, passes = sys.argv[1], int(sys.argv[2])
    paths = sorted(os.path.join(top, n) for top, _, names in os.walk(root) for n in names)
    times, total = [], 0
    for _ in range(passes):
        start, total = time.perf_counter(), 0
        for path in paths:
            with open(path, "rb") as fobj:
                total += len(fobj.read())
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times, "files": len(paths), "bytes": total}))
    """
)


def _fuse_usable() -> bool:
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


@pytest.fixture(scope="module")
def cached_repo(moto_server, bench_config, tmp_path_factory):
    """A pulled clone: every dataset in the workspace and in the cache."""
    from dvc_stream.testing import make_repo

    base = tmp_path_factory.mktemp("mount-overhead")
    origin = make_repo(base / "origin", moto_server)
    for name, (nfiles, size) in DATASETS.items():
        nfiles = bench_config.pick(nfiles, max(nfiles // 10, 4), max(nfiles // 100, 4))
        origin.make_dataset(f"data/{name}", nfiles=nfiles, size=size, depth=1, fanout=4)
    clone = origin.clone(base / "clone")
    clone.dvc("pull", "-q")
    return clone


def _read(repo, target: str, mode: str) -> dict:
    reader = [sys.executable, "-I", "-c", _READ_ALL, target, str(PASSES)]
    if mode == "plain":
        args = reader
    else:
        if mode == "mount, cache only":
            shutil.rmtree(repo.root / target)
        args = dvc_cmd("stream", "--mount", "--mount-target", target, "-q", "--", *reader)
    return last_json(check(run_measured(args, repo.root, repo.env)).stdout)


MODES = ["plain", "mount, workspace copy", "mount, cache only"]


@pytest.mark.parametrize("name", list(DATASETS))
def test_mount_overhead_on_cached_files(benchmark, bench_config, cached_repo, name):
    if not _fuse_usable():
        pytest.skip("needs /dev/fuse and fusermount3")
    target = f"data/{name}"
    _read(cached_repo, target, "plain")  # warm the page cache
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}

    def measure() -> None:
        for mode in MODES:
            runs[mode].append(_read(cached_repo, target, mode))

    benchmark.group = "micro-mount"
    benchmark.pedantic(measure, rounds=bench_config.rounds, iterations=1)
    info: dict = {}
    for mode, results in runs.items():
        key = mode.replace(", ", "_").replace(" ", "_")
        info[f"{key}_first_s"] = round(statistics.median(r["times"][0] for r in results), 4)
        info[f"{key}_again_s"] = round(statistics.median(min(r["times"][1:]) for r in results), 4)
    first = runs["plain"][0]
    info.update(files=first["files"], bytes=first["bytes"])
    plain_first, plain_again = info["plain_first_s"], info["plain_again_s"]
    for key in ("mount_workspace_copy", "mount_cache_only"):
        info[f"{key}_first_ratio"] = round(info[f"{key}_first_s"] / plain_first, 2)
        info[f"{key}_again_ratio"] = round(info[f"{key}_again_s"] / plain_again, 2)
    benchmark.extra_info.update(info)
    per_file_us = (info["mount_cache_only_first_s"] - plain_first) / first["files"] * 1e6
    record_micro(
        f"mount overhead, cached files: {first['files']} x "
        f"{first['bytes'] // first['files'] // KB} KB, first read / plain",
        f"x{info['mount_cache_only_first_ratio']:.2f} (cache only), "
        f"x{info['mount_workspace_copy_first_ratio']:.2f} (workspace copy)",
        f"plain {plain_first * 1e3:.1f} ms, through the mount "
        f"{info['mount_cache_only_first_s'] * 1e3:.1f} / "
        f"{info['mount_workspace_copy_first_s'] * 1e3:.1f} ms "
        f"(+{per_file_us:.0f} us per file); page-cache rereads x"
        f"{info['mount_cache_only_again_ratio']:.2f} / "
        f"x{info['mount_workspace_copy_again_ratio']:.2f}",
        **info,
    )
