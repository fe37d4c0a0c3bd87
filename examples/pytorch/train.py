"""Train a small CNN on a folder of PNG images, one class per subfolder (``class0/``, ...).

An ordinary PyTorch script: it needs neither DVC nor dvc-stream. Runs on the CPU, and is
deterministic: the same ``--seed`` gives the same loss at every step, whatever the number of
DataLoader workers or their start method. ``dvc stream`` reads each epoch's order from the
DataLoader itself, since ``PngFolder`` keeps its files in ``samples`` as torchvision's folder
datasets do. ``--prefetch-order`` shows the one line a script adds when its dataset keeps them
some other way: it hands the order to ``dvc_stream.prefetch``.

    python train.py --data data/images --report report.json
    dvc stream python train.py --workers 2 --start-method spawn
    dvc stream python train.py --prefetch-order
    dvc stream torchrun --standalone --nproc-per-node 2 train.py --distributed
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler


class PngFolder(Dataset):
    """``root/<class>/<file>.png`` -> (image tensor, class index, sample index)."""

    def __init__(self, root: str):
        self.classes = sorted(
            name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))
        )
        self.samples = [
            (os.path.join(root, name, filename), label)
            for label, name in enumerate(self.classes)
            for filename in sorted(os.listdir(os.path.join(root, name)))
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(pixels).permute(2, 0, 1), label, index


class ReadOrderHint(Sampler[int]):
    """Yields what ``sampler`` yields, after handing the epoch's files to ``dvc_stream.prefetch``.

    The DataLoader draws the order in the main process and its workers then read one file at a
    time, so without the hint a shuffled epoch starts with one demand fetch per file. With it,
    ``dvc stream`` downloads the files in parallel in the order the workers will open them. Lazy,
    like the samplers it wraps, so the random draws (and the losses) are the same with or without
    it; and a no-op when the program is not streamed.
    """

    def __init__(self, sampler: Sampler[int], dataset: PngFolder):
        self.sampler = sampler
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def __iter__(self):
        import dvc_stream

        order = list(self.sampler)
        dvc_stream.prefetch(self.dataset.samples[index][0] for index in order)
        yield from order

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)


class SmallCNN(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/images", help="the image folder")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument(
        "--start-method",
        choices=["fork", "spawn", "forkserver"],
        default=None,
        help="how DataLoader workers start (default: the platform's)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="one process per rank, as started by torchrun: DistributedSampler, DDP over gloo",
    )
    parser.add_argument(
        "--prefetch-order",
        action="store_true",
        help="tell dvc-stream each epoch's read order (dvc_stream.prefetch); needs dvc-stream",
    )
    parser.add_argument(
        "--report",
        help="write the per-step losses and the files read as JSON here; "
        "'{rank}' in the path is replaced by the rank",
    )
    return parser.parse_args(argv)


def make_loader(
    dataset: PngFolder, args: argparse.Namespace, rank: int, world_size: int
) -> DataLoader:
    generator = torch.Generator().manual_seed(args.seed)
    sampler: Sampler[int]
    if args.distributed:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=args.seed
        )
    else:
        sampler = RandomSampler(dataset, generator=generator)  # what shuffle=True builds
    if args.prefetch_order:
        sampler = ReadOrderHint(sampler, dataset)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        multiprocessing_context=args.start_method if args.workers else None,
        worker_init_fn=one_thread,
        generator=generator,
    )


def train(args: argparse.Namespace, rank: int = 0, world_size: int = 1) -> dict:
    torch.manual_seed(args.seed)
    dataset = PngFolder(args.data)
    model: nn.Module = SmallCNN(len(dataset.classes))
    if args.distributed:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loader = make_loader(dataset, args, rank, world_size)
    losses, seen = [], []
    for epoch in range(args.epochs):
        if isinstance(loader.sampler, (DistributedSampler, ReadOrderHint)):
            loader.sampler.set_epoch(epoch)
        for images, labels, indices in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            seen.extend(indices.tolist())
    files = sorted({dataset.samples[i][0] for i in seen})
    return {
        "rank": rank,
        "world_size": world_size,
        "losses": losses,
        "files": files,
        "bytes": sum(os.path.getsize(path) for path in files),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rank, world_size = 0, 1
    if args.distributed:
        dist.init_process_group("gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    try:
        report = train(args, rank, world_size)
    finally:
        if args.distributed:
            dist.destroy_process_group()
    losses = report["losses"]
    print(
        f"rank {rank}/{world_size}: {len(losses)} steps, {len(report['files'])} files, "
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    if args.report:
        with open(args.report.format(rank=rank), "w", encoding="utf-8") as fobj:
            json.dump(report, fobj)


if __name__ == "__main__":
    main()
