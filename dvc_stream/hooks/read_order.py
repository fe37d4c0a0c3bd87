"""Hint a PyTorch DataLoader's read order to the broker, a window ahead of its workers.

A shuffled epoch reads files in an order that no listing predicts, and each DataLoader worker
opens the files of its batch one after the other: without the order, every file of the first
batches costs one round trip. The DataLoader draws the order in the main process, from its
``_index_sampler``; the patched property wraps what it returns in ``SamplerHint``, which passes
the indices through unchanged and hints the files of the next ``AHEAD`` indices. It only reads
ahead in the sampler's own iterator, which draws its random numbers when the DataLoader first
asks for an index, so the order (and the training) is the same as without it.

The files of an index are found as torchvision's folder datasets keep them: ``samples[i]`` is a
path or a ``(path, target)`` pair; ``Subset`` and ``ConcatDataset`` are followed to the datasets
they wrap. Any other dataset gets no hint. Standard library only: runs after torch is imported,
but never imports it.
"""

from __future__ import annotations

import bisect
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from . import _tracked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .resolver import Resolver

    PathOf = Callable[[Any], "str | None"]

AHEAD = 1024  # indices hinted ahead of the DataLoader's position in its sampler
_MAP_STYLE = 0  # torch.utils.data.dataloader._DatasetKind.Map


def make_index_sampler(original: property, get: Callable[[], Resolver | None]) -> property:
    """The replacement of ``DataLoader._index_sampler``: the same sampler, hinting ahead."""
    if not isinstance(original, property):
        return original  # not the torch this was written for: leave it alone

    def _index_sampler(loader):
        sampler = original.fget(loader)
        resolver = get()
        if (
            resolver is None
            or not resolver.hints_read_order()
            or getattr(loader, "_dataset_kind", None) != _MAP_STYLE
        ):
            return sampler
        path_of = path_finder(loader.dataset)
        return sampler if path_of is None else SamplerHint(sampler, path_of, get)

    return property(_index_sampler, doc=original.__doc__)


def path_finder(dataset: Any) -> PathOf | None:
    """A function from an index of ``dataset`` to the file it reads; None if unknown."""
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):  # Subset
        inner = path_finder(dataset.dataset)
        indices = dataset.indices
        return None if inner is None else lambda index: inner(indices[index])
    if hasattr(dataset, "datasets") and hasattr(dataset, "cumulative_sizes"):  # ConcatDataset
        return _concat_finder(dataset.datasets, dataset.cumulative_sizes)
    samples = getattr(dataset, "samples", None)
    if samples is None or not hasattr(samples, "__getitem__"):
        return None

    def from_samples(index: Any) -> str | None:
        sample = samples[index]
        path = sample[0] if isinstance(sample, (tuple, list)) else sample
        return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None

    return from_samples


def _concat_finder(datasets: list, ends: list[int]) -> PathOf | None:
    finders = [path_finder(dataset) for dataset in datasets]
    if not any(finders):
        return None

    def from_parts(index: Any) -> str | None:
        part = bisect.bisect_right(ends, index)
        finder = finders[part]
        start = ends[part - 1] if part else 0
        return None if finder is None else finder(index - start)

    return from_parts


class SamplerHint:
    """Yields what ``sampler`` yields (indices, or batches of them) and hints their files ahead.

    The hint goes out in steps of half the window, so a step is one request to the broker and
    the window never runs dry while the workers are still on the previous step's files. A failed
    hint stops the hinting, never the training.
    """

    def __init__(self, sampler: Any, path_of: PathOf, get: Callable[[], Resolver | None]):
        self.sampler = sampler
        self._path_of = path_of
        self._get = get
        self._broker_lost = False

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        items = iter(self.sampler)
        ahead: deque[Any] = deque()
        indices_ahead = 0
        exhausted = False
        while True:
            if indices_ahead <= AHEAD // 2 and not exhausted:
                pulled = []
                while indices_ahead < AHEAD:
                    try:
                        item = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    pulled.append(item)
                    indices_ahead += _count(item)
                ahead.extend(pulled)
                self._hint(pulled)
            if not ahead:
                return
            item = ahead.popleft()
            indices_ahead -= _count(item)
            yield item

    def _hint(self, items: list[Any]) -> None:
        if self._broker_lost:
            return
        paths = []
        for item in items:
            for index in item if isinstance(item, (list, tuple)) else (item,):
                path = self._path(index)
                tracked = None if path is None else _tracked.candidate(path, self._get)
                if tracked is not None:
                    paths.append(tracked)
        resolver = self._get()
        if not paths or resolver is None:
            return
        try:
            resolver.prefetch(paths)
        except OSError:
            self._broker_lost = True  # reads will say so; hints need not

    def _path(self, index: Any) -> str | None:
        try:
            return self._path_of(index)
        except (LookupError, TypeError, ValueError):
            return None


def _count(item: Any) -> int:
    return len(item) if isinstance(item, (list, tuple)) else 1
