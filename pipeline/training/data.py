"""The feature tables' dataset and the batch samplers of every family (images: pipeline/training/image_data.py).

Training and prediction batches are drawn by Podium's own samplers, which also shard them
across DDP processes (pipeline/training/distributed.py): with one process they are the plain
seeded batches; with N, each global batch is split into N parts for training, and whole
prediction batches are dealt out, each row once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from pipeline.training.distributed import World


class TableDataset(Dataset):
    """({"numeric", "categorical"} tensors, target) per row of a typed feature table (pipeline/models/mlp.py)."""

    def __init__(self, numeric: torch.Tensor, categorical: torch.Tensor, targets: np.ndarray | None = None):
        self.numeric, self.categorical = numeric, categorical
        self.targets = torch.from_numpy(np.asarray(targets)) if targets is not None else torch.zeros(len(numeric))

    def __len__(self) -> int:
        return len(self.numeric)

    def __getitem__(self, index: int):
        return {"numeric": self.numeric[index], "categorical": self.categorical[index]}, self.targets[index]


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


class ShardedBatches(Sampler[list[int]]):
    """This process's part of each global training batch of `batches` (all of it with one process).

    The N processes of a DDP run take consecutive slices of the same global batch, so the
    gradient they average is the one a single process would compute on the whole batch, and
    `model.batch_size` means the same however the run is spread. `sampler` is the seeded
    shuffle underneath, where Lightning sets the epoch.
    """

    def __init__(self, batches: Sampler[list[int]], world: World = World()):
        self.batches, self.world = batches, world
        self.sampler = batches.sampler

    def __iter__(self):
        for batch in self.batches:
            yield (
                batch
                if self.world.size == 1
                else np.array_split(np.asarray(batch), self.world.size)[self.world.rank].tolist()
            )

    def __len__(self) -> int:
        return len(self.batches)


class EvalBatches(Sampler[list[int]]):
    """Prediction batches of `batch_size` rows, taken from `order`; with N processes each takes every N-th batch.

    No row is repeated to even out the shards (DistributedSampler would), and each batch holds
    the rows it holds in a single process, so the predictions are the single process's.
    `positions` are the dataset rows of this process's outputs, in order.
    """

    def __init__(self, order: np.ndarray, batch_size: int, world: World = World()):
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        self.mine = batches[world.rank :: world.size]
        self.positions = np.concatenate(self.mine) if self.mine else np.empty(0, dtype=np.int64)

    def __iter__(self):
        for batch in self.mine:
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self.mine)


def loader_options(data_cfg) -> dict:
    """DataLoader worker settings from the `data` config section."""
    workers = int(data_cfg.num_workers)
    pin = data_cfg.pin_memory if data_cfg.pin_memory is not None else torch.cuda.is_available()
    return {
        "num_workers": workers,
        "pin_memory": bool(pin),
        "persistent_workers": workers > 0 and bool(data_cfg.persistent_workers),
    }


def train_loader(dataset: Dataset, batches: Sampler[list[int]], world: World, data_cfg, collate_fn=None) -> DataLoader:
    """The training loader over `batches` (global batches), sharded for `world`."""
    return DataLoader(
        dataset, batch_sampler=ShardedBatches(batches, world), collate_fn=collate_fn, **loader_options(data_cfg)
    )


def shuffled_batches(n: int, batch_size: int, seed: int) -> BatchSampler:
    """Seeded shuffled batches that drop a ragged last batch (BatchNorm needs >1 row)."""
    return BatchSampler(SeededShuffle(n, seed), batch_size, drop_last=n > batch_size)


def eval_loader(dataset: Dataset, batches: EvalBatches, data_cfg, collate_fn=None) -> DataLoader:
    """A loader for validation or prediction over this process's `batches`."""
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn, **loader_options(data_cfg))
