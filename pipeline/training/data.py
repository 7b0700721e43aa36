"""Datasets over the decoded image arrays of `prepare` (no file reads while training)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class ImageArrayDataset(Dataset):
    """(uint8 image tensor, target) pairs; targets are 0 for unlabelled (test) rows."""

    def __init__(self, images: np.ndarray, targets: np.ndarray | None = None):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.targets = torch.from_numpy(np.asarray(targets)) if targets is not None else torch.zeros(len(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.targets[index]


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, num_workers: int, seed: int, collate_fn=None) -> DataLoader:
    """Shuffled loader that drops a ragged last batch (BatchNorm needs >1 row) when training."""
    generator = torch.Generator().manual_seed(seed) if train else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) > batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=generator,
        collate_fn=collate_fn,
    )
