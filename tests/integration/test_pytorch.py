"""``examples/pytorch/train.py`` under ``dvc stream``: DataLoader workers of every start method,
and torchrun with one rank per process.

Streamed runs must train exactly as on pulled data: the same seed gives the same loss at every
step. Under torchrun each rank reads only its ``DistributedSampler`` shard, and every file is
downloaded once in all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import IMAGES, pulled_clone, read_json, run, stream

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

pytestmark = pytest.mark.slow

TRAIN = ("train.py", "--data", IMAGES, "--batch-size", "16", "--seed", "7")


@pytest.fixture(scope="module")
def reference(image_repo, tmp_path_factory):
    """The report of a run on a pulled clone: 2 fork workers, the same seed."""
    clone = pulled_clone(image_repo.origin)
    report = tmp_path_factory.mktemp("reference") / "report.json"
    command = [*TRAIN, "--workers", "2", "--start-method", "fork", "--report", report]
    run(clone, sys.executable, *command)
    return read_json(report)


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_dataloader_workers_train_as_on_pulled_data(image_repo, reference, tmp_path, start_method):
    clone = image_repo.fresh_clone()
    report, stats = tmp_path / "report.json", tmp_path / "stats.json"
    command = [*TRAIN, "--workers", "2", "--start-method", start_method, "--report", report]
    stream(clone, sys.executable, *command, options=("--stats", str(stats)))
    got = read_json(report)
    assert len(reference["losses"]) == 4
    assert got["losses"] == reference["losses"]
    assert got["files"] == reference["files"]
    counts = read_json(stats)
    assert counts["failed_files"] == 0
    fetched = counts["demand_files"] + counts["prefetched_files"]
    assert fetched == len(image_repo.files), counts
    assert counts["demand_bytes"] + counts["prefetched_bytes"] == image_repo.total_size
    assert clone.tracked_files(IMAGES) == image_repo.origin.tracked_files(IMAGES)


def test_read_order_hint_prefetches_what_the_workers_read(image_repo, reference, tmp_path):
    """``--prefetch-order`` hands each epoch's order to ``dvc_stream.prefetch``: under
    ``--prefetch none`` only the hint can prefetch, and the losses stay those of pulled data."""
    clone = image_repo.fresh_clone()
    report, stats = tmp_path / "report.json", tmp_path / "stats.json"
    command = [*TRAIN, "--workers", "2", "--start-method", "fork", "--report", report]
    options = ("--prefetch", "none", "--stats", str(stats))
    stream(clone, sys.executable, *command, "--prefetch-order", options=options)
    assert read_json(report)["losses"] == reference["losses"]
    counts = read_json(stats)
    assert counts["failed_files"] == 0
    assert counts["demand_files"] + counts["prefetched_files"] == len(image_repo.files)
    assert counts["prefetched_files"] > counts["demand_files"], counts


def test_the_dataloader_order_is_hinted_with_no_change_to_the_program(
    image_repo, reference, latency_proxy, tmp_path
):
    """Without ``--prefetch-order``, under ``--prefetch sampler``: the hooks hint the sampler's
    order themselves, so the files come ahead of the workers' reads; the losses are unchanged."""
    clone = image_repo.fresh_clone()
    clone.set_endpoint(latency_proxy.endpoint_url)
    latency_proxy.reset_counters()
    report, stats = tmp_path / "report.json", tmp_path / "stats.json"
    command = [*TRAIN, "--workers", "2", "--start-method", "fork", "--report", report]
    options = ("--prefetch", "sampler", "--stats", str(stats))
    stream(clone, sys.executable, *command, options=options)
    assert read_json(report)["losses"] == reference["losses"]
    counts = read_json(stats)
    assert counts["failed_files"] == 0
    assert counts["demand_files"] + counts["prefetched_files"] == len(image_repo.files)
    assert counts["prefetched_files"] > counts["demand_files"], counts
    gets = _object_gets(latency_proxy.request_log)
    assert len(gets) == len(set(gets)) == len(image_repo.files)


# In-process, as in a notebook: torch is imported before install_hooks(), so the DataLoader
# is patched at install rather than at its import.
IN_PROCESS = r"""
import json, sys
import torch
from torch.utils.data import DataLoader, RandomSampler
import dvc_stream
sys.path.insert(0, ".")  # the example's train.py, at the repo's root
from train import PngFolder

dvc_stream.install_hooks(".", prefetch="sampler")
dataset = PngFolder("data/images")
sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(7))
loader = DataLoader(dataset, batch_size=16, sampler=sampler)
order = [int(i) for _images, _labels, indices in loader for i in indices]
stats = dvc_stream.uninstall_hooks().as_dict()
print(json.dumps({"order": order, "stats": stats}))
"""


def test_install_hooks_hints_the_order_of_a_dataloader_imported_before(image_repo, tmp_path):
    clone = image_repo.fresh_clone()
    script = tmp_path / "in_process.py"
    script.write_text(IN_PROCESS)
    got = json.loads(run(clone, sys.executable, script).stdout.strip().splitlines()[-1])
    expected = torch.randperm(len(image_repo.files), generator=torch.Generator().manual_seed(7))
    assert got["order"] == expected.tolist()
    stats = got["stats"]
    assert stats["failed_files"] == 0
    assert stats["demand_files"] + stats["prefetched_files"] == len(image_repo.files)
    assert stats["prefetched_files"] > stats["demand_files"], stats


def _torchrun() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(exe):
        pytest.skip("torchrun is not installed next to this interpreter")
    return exe


def _torchrun_one_node() -> list[str]:
    return [_torchrun(), "--standalone", "--nproc-per-node", "2"]


def _object_gets(log) -> list[str]:
    paths = [path.split("?", 1)[0] for method, path in log if method == "GET"]
    return [p for p in paths if "/files/md5/" in p and not p.endswith(".dir")]


def test_torchrun_ranks_fetch_only_their_shards(image_repo, latency_proxy, tmp_path):
    clone = image_repo.fresh_clone()
    clone.set_endpoint(latency_proxy.endpoint_url)
    stats = tmp_path / "stats.json"
    latency_proxy.reset_counters()
    train = [*TRAIN, "--distributed", "--workers", "1", "--report", tmp_path / "rank{rank}.json"]
    stream(
        clone, *_torchrun_one_node(), *train, options=("--prefetch", "none", "--stats", str(stats))
    )
    ranks = [read_json(tmp_path / f"rank{rank}.json") for rank in (0, 1)]
    shards = [set(report["files"]) for report in ranks]
    every = {f"{IMAGES}/{relpath}" for relpath in image_repo.files}
    assert shards[0].isdisjoint(shards[1])
    assert shards[0] | shards[1] == every
    assert [len(report["losses"]) for report in ranks] == [2, 2]
    counts = read_json(stats)
    assert counts["demand_files"] == len(every)
    assert counts["prefetched_files"] == counts["cached_files"] == counts["failed_files"] == 0
    assert 0.95 <= counts["demand_bytes"] / image_repo.total_size <= 1.1
    gets = _object_gets(latency_proxy.request_log)
    assert len(gets) == len(set(gets)) == len(every), "each object must be downloaded once"


def test_torchrun_with_prefetch_downloads_the_dataset_once(image_repo, latency_proxy, tmp_path):
    # Both ranks list every class folder, so the prefetcher fills the whole dataset: still one
    # download per object for the two processes together.
    clone = image_repo.fresh_clone()
    clone.set_endpoint(latency_proxy.endpoint_url)
    stats = tmp_path / "stats.json"
    latency_proxy.reset_counters()
    train = [*TRAIN, "--distributed", "--workers", "0"]
    stream(clone, *_torchrun_one_node(), *train, options=("--stats", str(stats)))
    counts = read_json(stats)
    fetched = counts["demand_bytes"] + counts["prefetched_bytes"] + counts["cached_bytes"]
    assert fetched == image_repo.total_size, counts
    gets = _object_gets(latency_proxy.request_log)
    assert len(gets) == len(set(gets)) == len(image_repo.files)
    assert clone.tracked_files(IMAGES) == image_repo.origin.tracked_files(IMAGES)


def _node_command(
    node: int, port: str, out: Path, prefetch: str = "none", epochs: int = 2
) -> list[str]:
    """``dvc stream ... torchrun`` as node ``node`` of 2, one rank each, static rendezvous."""
    torchrun = [_torchrun(), "--nnodes", "2", "--node-rank", str(node)]
    torchrun += ["--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", port]
    train = [*TRAIN, "--distributed", "--epochs", str(epochs), "--workers", "1"]
    train += ["--report", str(out / "rank{rank}.json")]
    stats = ["--stats", str(out / f"stats{node}.json")]
    return [
        sys.executable,
        "-m",
        "dvc",
        "stream",
        "--prefetch",
        prefetch,
        *stats,
        "--",
        *torchrun,
        *train,
    ]


def _run_nodes(nodes, commands: list[list[str]]) -> None:
    procs = [
        subprocess.Popen(
            command,
            cwd=clone.root,
            env=clone.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for clone, command in zip(nodes, commands, strict=True)
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], "\n".join(outputs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_with_a_shared_cache_download_the_dataset_once(
    image_repo, latency_proxy, tmp_path
):
    # The multi-node recipe on one machine: one `dvc stream` per node, each in its own clone,
    # one remote, one DVC cache. In epoch 2 the sampler reshuffles, so each node reads files the
    # other one fetched in epoch 1: they come from the shared cache, not from the remote.
    shared_cache = tmp_path / "shared-cache"
    nodes = [image_repo.fresh_clone() for _ in range(2)]
    for clone in nodes:
        clone.set_endpoint(latency_proxy.endpoint_url)
        clone.dvc("cache", "dir", "--local", shared_cache)
    port = str(_free_port())
    latency_proxy.reset_counters()
    _run_nodes(nodes, [_node_command(rank, port, tmp_path) for rank in (0, 1)])
    counts = [read_json(tmp_path / f"stats{rank}.json") for rank in (0, 1)]
    reports = [read_json(tmp_path / f"rank{rank}.json") for rank in (0, 1)]
    for count, report in zip(counts, reports, strict=True):
        assert count["demand_files"] + count["cached_files"] == len(report["files"])
    assert sum(count["demand_files"] for count in counts) == len(image_repo.files)
    assert sum(count["cached_files"] for count in counts) > 0
    gets = _object_gets(latency_proxy.request_log)
    assert len(gets) == len(set(gets)) == len(image_repo.files)


def test_nodes_under_prefetch_sampler_fetch_their_own_shard_ahead(
    image_repo, latency_proxy, tmp_path
):
    # Two nodes, separate caches, one epoch: each node's DataLoader hints its rank's
    # DistributedSampler shard, so each node prefetches what its rank reads and nothing else.
    nodes = [image_repo.fresh_clone() for _ in range(2)]
    for clone in nodes:
        clone.set_endpoint(latency_proxy.endpoint_url)
    port = str(_free_port())
    latency_proxy.reset_counters()
    commands = [_node_command(rank, port, tmp_path, "sampler", epochs=1) for rank in (0, 1)]
    _run_nodes(nodes, commands)
    counts = [read_json(tmp_path / f"stats{rank}.json") for rank in (0, 1)]
    reports = [read_json(tmp_path / f"rank{rank}.json") for rank in (0, 1)]
    for clone, count, report in zip(nodes, counts, reports, strict=True):
        assert count["demand_files"] + count["prefetched_files"] == len(report["files"]), count
        assert count["prefetched_files"] > count["demand_files"], count
        assert count["failed_files"] == 0
        shard = {path.removeprefix(f"{IMAGES}/") for path in report["files"]}
        assert set(clone.tracked_files(IMAGES)) == shard
    gets = _object_gets(latency_proxy.request_log)
    assert len(gets) == len(set(gets)) == len(image_repo.files)
