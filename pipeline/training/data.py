"""Datasets over the decoded image arrays of `prepare` (no file reads while training)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class ImageArrayDataset(Dataset):
    """(uint8 image tensor, target) pairs; targets are 0 for unlabelled (test) rows."""

    def __init__(self, images: np.ndarray, targets: np.ndarray | None = None):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.targets = torch.from_numpy(np.asarray(targets)) if targets is not None else torch.zeros(len(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.targets[index]


class SeededShuffle(Sampler[int]):
    """Every row once per epoch, in an order that depends on (seed, epoch) only.

    Lightning calls `set_epoch` before each epoch (as it does for DistributedSampler), so a run
    resumed at epoch e sees the order the uninterrupted run saw; a generator that advances with
    each epoch would restart from epoch 0's order instead.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, num_workers: int, seed: int, collate_fn=None) -> DataLoader:
    """Shuffled loader that drops a ragged last batch (BatchNorm needs >1 row) when training."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SeededShuffle(len(dataset), seed) if train else None,
        drop_last=train and len(dataset) > batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
    )
