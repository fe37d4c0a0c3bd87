"""A stand-in training program for the benchmarks: one (or two) epochs over a tracked directory.

Standalone (standard library; ``dvc`` only for the ``dvc-fs`` and ``dvc-api`` readers). It lists
the files of ``--data`` (or of the given class dirs under it), shuffles them with a fixed seed,
splits them into batches and hands the batches to a DataLoader-like ``multiprocessing.Pool`` whose
workers read and "decode" (md5 + crc32) every file, with a bounded number of batches in flight.
The main process "trains" by sleeping a fixed time per batch. It prints one JSON line:

- ``start_ts``, ``first_batch_ts``, ``epoch_end_ts``: wall-clock (``time.time()``) stamps, so
  that the harness can measure from its own cold start (before any ``dvc pull``);
- ``ttfb_s``, ``epoch_s``: the same measured from this program's start;
- ``epochs_s``: the duration of every epoch (the second one is warm);
- ``files``, ``bytes``: what one epoch read.

``--subset-files N`` trains on N files drawn at random (seeded) from all those listed, as a
program that indexes a whole dataset and trains on a sample of it does; ``--pause-s`` waits that
long after the last epoch, as a notebook does while someone looks at what it showed, so that
what ``dvc stream`` fetches after the reads is measured too.

``--hint`` passes the epoch's read order to ``dvc_stream.prefetch`` before the first batch, as a
sampler-aware program would (one line); without it the program is unchanged.

``--loader torch`` runs the same epoch through a real ``torch.utils.data.DataLoader`` instead of
the pool: a map-style dataset that keeps its files as torchvision's folder datasets do
(``samples[i] = (path, class)``), a seeded ``RandomSampler``, the same workers, batches in flight
and step time.

``--reader open`` uses the builtin ``open()`` (what ``dvc pull`` and ``dvc stream`` serve);
``--reader dvc-fs`` reads with one ``dvc.api.DVCFileSystem(".")`` per worker, ``fs.open(path)``
(the call ``dvc.api.open`` makes, without re-opening the repo for every file);
``--reader dvc-api`` calls ``dvc.api.open(path, mode="rb")`` per file (about 0.5-2 s per file
here: it opens the repo, builds the index and a new S3 session every time). Both list through
``DVCFileSystem.find``, as a program that streams with DVC's own API would.
"""

from __future__ import annotations

import time

START_TS = time.time()
START = time.perf_counter()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from collections import deque  # noqa: E402

_READER = "open"
_FS = None


def _init_worker(reader: str) -> None:
    global _READER
    _READER = reader


def _read(path: str) -> bytes:
    global _FS
    if _READER == "dvc-api":
        import dvc.api

        with dvc.api.open(path, mode="rb") as fobj:
            return fobj.read()
    if _READER == "dvc-fs":
        if _FS is None:  # one per worker process, as dvc.api.open would build per call
            from dvc.api import DVCFileSystem

            _FS = DVCFileSystem(".")
        with _FS.open(path, mode="rb") as fobj:
            return fobj.read()
    with open(path, "rb") as fobj:
        return fobj.read()


def load_batch(paths: list[str]) -> tuple[int, int]:
    """Read and "decode" one batch; returns (bytes, checksum) like a collated tensor would."""
    total = 0
    check = 0
    for path in paths:
        data = _read(path)
        hashlib.md5(data).digest()
        check ^= zlib.crc32(data)
        total += len(data)
    return total, check


class FileSamples:
    """A map-style dataset of files, kept as torchvision's ``ImageFolder`` keeps them."""

    def __init__(self, files: list[str]):
        self.samples = [(path, 0) for path in files]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[int, int]:
        return load_batch([self.samples[index][0]])


def collate(items: list[tuple[int, int]]) -> tuple[int, int]:
    check = 0
    for _size, crc in items:
        check ^= crc
    return sum(size for size, _crc in items), check


def run_torch_epoch(loader, sleep_s: float) -> dict:
    begin = time.perf_counter()
    first = None
    nbytes = 0
    for size, _check in loader:
        nbytes += size
        if first is None:
            first = time.perf_counter()
        time.sleep(sleep_s)
    end = time.perf_counter()
    return {"begin": begin, "first": first or end, "end": end, "bytes": nbytes}


def torch_epochs(files: list[str], args: argparse.Namespace) -> list[dict]:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    dataset = FileSamples(files)
    loader = DataLoader(
        dataset,
        batch_size=args.batch,
        sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(args.seed)),
        num_workers=args.workers,
        prefetch_factor=args.prefetch_factor,
        persistent_workers=True,
        collate_fn=collate,
        worker_init_fn=_init_worker_torch,
    )
    return [run_torch_epoch(loader, args.sleep_ms / 1000.0) for _ in range(args.epochs)]


def _init_worker_torch(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


def list_files(root: str, classes: list[str], reader: str) -> list[str]:
    tops = [os.path.join(root, name) for name in classes] if classes else [root]
    files: list[str] = []
    if reader in ("dvc-api", "dvc-fs"):
        from dvc.api import DVCFileSystem

        fs = DVCFileSystem(".")
        for top in tops:
            files += [p.lstrip("/") for p in fs.find(top)]
        return sorted(files)
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            files += [os.path.join(dirpath, name) for name in filenames]
    return sorted(files)


def run_epoch(pool, batches: list[list[str]], sleep_s: float, in_flight: int) -> dict:
    begin = time.perf_counter()
    first = None
    nbytes = 0
    pending: deque = deque()
    it = iter(batches)
    for batch in it:
        pending.append(pool.apply_async(load_batch, (batch,)))
        if len(pending) >= in_flight:
            break
    while pending:
        size, _check = pending.popleft().get()
        nbytes += size
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.apply_async(load_batch, (nxt,)))
        if first is None:
            first = time.perf_counter()
        time.sleep(sleep_s)  # the accelerator's share of the step
    end = time.perf_counter()
    return {"begin": begin, "first": first or end, "end": end, "bytes": nbytes}


def pool_epochs(files: list[str], args: argparse.Namespace) -> list[dict]:
    random.Random(args.seed).shuffle(files)
    if args.hint:
        import dvc_stream

        dvc_stream.prefetch(files)  # the sampler's order: what the workers will read, in order
    batches = [files[i : i + args.batch] for i in range(0, len(files), args.batch)]
    in_flight = max(1, args.workers * args.prefetch_factor)
    epochs = []
    with multiprocessing.Pool(args.workers, _init_worker, (args.reader,)) as pool:
        for _ in range(args.epochs):
            epochs.append(run_epoch(pool, batches, args.sleep_ms / 1000.0, in_flight))
    return epochs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/images")
    parser.add_argument("--classes", nargs="*", default=[], help="class dirs under --data")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sleep-ms", type=float, default=5.0, help="simulated step time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prefetch-factor", type=int, default=2, help="batches per worker")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reader", choices=["open", "dvc-fs", "dvc-api"], default="open")
    parser.add_argument("--hint", action="store_true", help="dvc_stream.prefetch(read order)")
    parser.add_argument("--loader", choices=["pool", "torch"], default="pool")
    parser.add_argument(
        "--subset-files", type=int, help="train on this many files, drawn at random"
    )
    parser.add_argument("--pause-s", type=float, default=0.0, help="wait after the last epoch")
    parser.add_argument("--out", help="also write the JSON result to this file")
    args = parser.parse_args(argv)

    files = list_files(args.data, args.classes, args.reader)
    if not files:
        print(f"train.py: no files under {args.data} {args.classes}", file=sys.stderr)
        return 2
    if args.subset_files:
        files = sorted(random.Random(args.seed).sample(files, args.subset_files))
    epochs = torch_epochs(files, args) if args.loader == "torch" else pool_epochs(files, args)
    first = epochs[0]

    def stamp(t: float) -> float:
        return START_TS + (t - START)

    result = {
        "start_ts": START_TS,
        "first_batch_ts": stamp(first["first"]),
        "epoch_end_ts": stamp(first["end"]),
        "ttfb_s": first["first"] - START,
        "epoch_s": first["end"] - START,
        "epochs_s": [e["end"] - e["begin"] for e in epochs],
        "files": len(files),
        "bytes": first["bytes"],
        "batches": -(-len(files) // args.batch),
    }
    line = json.dumps(result)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fobj:
            fobj.write(line + "\n")
    time.sleep(args.pause_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
