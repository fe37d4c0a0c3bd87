"""The PyTorch DataLoader's read order, hinted ahead: the ``ON_IMPORT`` entry of ``PATCHES``.

These tests import the stand-in ``torch.utils.data.dataloader`` of ``tests/fake_torch``: the
table's real entry, applied by the real import watcher, on a DataLoader that draws its order the
way torch's does (``iter(self._index_sampler)``). The real torch is tested in
``tests/integration/test_pytorch.py``.
"""

from __future__ import annotations

import importlib.machinery
import os
import random
import sys
from pathlib import Path

import pytest

from dvc_stream.hooks import patches, read_order

from .conftest import FakeResolver

FAKE_TORCH = Path(__file__).parent.parent / "fake_torch"
MODULE = "torch.utils.data.dataloader"
FILES = 3000
BATCH = 64


class Folder:
    """Like torchvision's ImageFolder: ``samples[i] = (path, class)``."""

    def __init__(self, root: str, count: int = FILES):
        self.samples = [(os.path.join(root, f"c{i % 3}", f"{i}.png"), i % 3) for i in range(count)]

    def __getitem__(self, index: int):
        return index

    def __len__(self) -> int:
        return len(self.samples)


class Shuffled:
    """A batch sampler drawing its order lazily, at the first ``next()``, like torch's."""

    def __init__(self, count: int, seed: int):
        self.count, self.seed = count, seed
        self.draws = 0

    def __len__(self) -> int:
        return -(-self.count // BATCH)

    def __iter__(self):
        order = list(range(self.count))
        self.draws += 1
        random.Random(self.seed).shuffle(order)
        for start in range(0, self.count, BATCH):
            yield order[start : start + BATCH]


@pytest.fixture
def fake_torch(monkeypatch):
    """The stand-in ``torch`` package: importable, not imported."""
    if "torch" in sys.modules:
        pytest.skip("the real torch is imported in this process")
    monkeypatch.syspath_prepend(str(FAKE_TORCH))
    yield
    for name in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        del sys.modules[name]


@pytest.fixture
def resolver(view):
    return FakeResolver(view.remote, view.workspace, roots=("data",))


def _consume(loader, hints: list[list[str]]) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """The batches the loader yields, and (indices consumed, paths hinted) after each batch."""
    batches, progress = [], []
    for batch in loader:
        batches.append(batch)
        progress.append((sum(map(len, batches)), sum(map(len, hints))))
    return batches, progress


def test_a_dataloader_imported_later_hints_its_order_a_window_ahead(view, resolver, fake_torch):
    patches.install(resolver)
    from torch.utils.data.dataloader import DataLoader

    dataset = Folder(str(view.workspace / "data"))
    sampler = Shuffled(FILES, seed=5)
    batches, progress = _consume(DataLoader(dataset, sampler), resolver.hints)

    expected = list(Shuffled(FILES, seed=5))
    assert batches == expected, "the loader must yield exactly the sampler's batches"
    assert sampler.draws == 1
    order = [index for batch in expected for index in batch]
    hinted = [path for hint in resolver.hints for path in hint]
    assert hinted == [dataset.samples[i][0] for i in order]
    assert len(resolver.hints) > 2, "the epoch is hinted in steps, not at once"
    for consumed, hinted_count in progress:
        assert hinted_count >= min(consumed, FILES), "every file is hinted before it is read"
        assert hinted_count <= consumed + read_order.AHEAD + BATCH, "at most a window ahead"


def test_a_dataloader_imported_before_install_is_patched_at_install(view, resolver, fake_torch):
    module = importlib.import_module(MODULE)
    original = vars(module.DataLoader)["_index_sampler"]
    patches.install(resolver)
    assert vars(module.DataLoader)["_index_sampler"] is not original
    dataset = Folder(str(view.workspace / "data"), count=10)
    list(module.DataLoader(dataset, Shuffled(10, seed=1)))
    assert sorted(p for hint in resolver.hints for p in hint) == sorted(
        path for path, _ in dataset.samples
    )
    patches.uninstall()
    assert vars(module.DataLoader)["_index_sampler"] is original


def test_uninstall_stops_watching_and_the_module_keeps_its_own_loader(resolver, fake_torch):
    patches.install(resolver)
    assert patches._watcher in sys.meta_path
    patches.uninstall()
    assert patches._watcher not in sys.meta_path
    module = importlib.import_module(MODULE)
    assert "DataLoader" in vars(module)
    assert vars(module.DataLoader)["_index_sampler"].fget.__module__ == MODULE
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader
    assert module.__spec__.loader is module.__loader__


def test_imported_while_installed_restored_by_uninstall(resolver, fake_torch):
    patches.install(resolver)
    module = importlib.import_module(MODULE)
    assert type(module.__loader__) is importlib.machinery.SourceFileLoader
    patched = vars(module.DataLoader)["_index_sampler"]
    assert patched.fget.__module__ == read_order.__name__
    patches.uninstall()
    assert vars(module.DataLoader)["_index_sampler"].fget.__module__ == MODULE


def test_no_hint_when_the_policy_says_no(view, resolver, fake_torch):
    resolver.read_order = False
    patches.install(resolver)
    from torch.utils.data.dataloader import DataLoader

    sampler = Shuffled(100, seed=2)
    loader = DataLoader(Folder(str(view.workspace / "data"), count=100), sampler)
    assert loader._index_sampler is sampler
    assert len(list(loader)) == len(sampler)
    assert resolver.hints == []


def test_iterable_datasets_and_unknown_datasets_get_no_hint(view, resolver, fake_torch):
    patches.install(resolver)
    from torch.utils.data.dataloader import DataLoader

    sampler = Shuffled(100, seed=2)
    iterable = DataLoader(Folder(str(view.workspace / "data"), count=100), sampler, iterable=True)
    assert iterable._index_sampler is sampler
    assert DataLoader(list(range(100)), sampler)._index_sampler is sampler
    assert resolver.hints == []


def test_only_tracked_paths_are_hinted(view, resolver, fake_torch):
    patches.install(resolver)
    from torch.utils.data.dataloader import DataLoader

    dataset = Folder(str(view.workspace / "data"), count=4)
    dataset.samples += [(str(view.workspace / "src" / "x.png"), 0), (None, 0)]
    assert len(list(DataLoader(dataset, [[0, 4, 1], [5, 2, 3]]))) == 2
    assert resolver.hints == [[dataset.samples[i][0] for i in (0, 1, 2, 3)]]


def test_a_lost_broker_stops_the_hints_not_the_epoch(view, resolver, fake_torch):
    def gone(paths):
        resolver.hints.append(paths)
        raise OSError("dvc stream: lost the connection to the broker")

    resolver.prefetch = gone
    patches.install(resolver)
    from torch.utils.data.dataloader import DataLoader

    sampler = Shuffled(FILES, seed=3)
    batches = list(DataLoader(Folder(str(view.workspace / "data")), sampler))
    assert batches == list(Shuffled(FILES, seed=3))
    assert len(resolver.hints) == 1


class Subset:
    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, indices


class Concat:
    def __init__(self, datasets):
        self.datasets = datasets
        self.cumulative_sizes = []
        total = 0
        for dataset in datasets:
            total += len(dataset)
            self.cumulative_sizes.append(total)


def test_paths_are_found_through_subsets_and_concatenations():
    first, second = Folder("/a", count=5), Folder("/b", count=3)
    second.samples = [path for path, _ in second.samples]  # bare paths are samples too
    concat = Concat([first, list(range(4)), second])
    path_of = read_order.path_finder(Subset(concat, [7, 9, 0, 11]))
    assert path_of(0) is None  # index 7 falls in the plain list: no path
    assert path_of(1) == "/b/c0/0.png"
    assert path_of(2) == "/a/c0/0.png"
    assert path_of(3) == "/b/c2/2.png"
    assert read_order.path_finder(list(range(3))) is None
    assert read_order.path_finder(Concat([list(range(3))])) is None
