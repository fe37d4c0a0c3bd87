"""A stand-in for torch.utils.data.dataloader: what the hooks rely on, nothing more."""


class DataLoader:
    def __init__(self, dataset, batches, iterable=False):
        self.dataset = dataset
        self.batch_sampler = batches
        self._dataset_kind = 1 if iterable else 0

    @property
    def _index_sampler(self):
        """The sampler the loader draws its indices from."""
        return self.batch_sampler

    def __len__(self):
        return len(self._index_sampler)

    def __iter__(self):
        for batch in iter(self._index_sampler):
            yield [self.dataset[index] for index in batch]
