"""A fold's inputs: the network and the train / validation / test datasets, per modality.

Image folds slice the decoded image arrays of `prepare`. Text folds build the family's tokenizer
(the LSTM's vocabulary from the fold's training rows only, so validation and test words never
shape it) and tokenize through the on-disk cache; the tokenizer is kept for saving beside the
fold's checkpoint, so the saved model can be used again on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pipeline import io
from pipeline.models import family_module
from pipeline.predictions import n_logits
from pipeline.prepare import PreparedData
from pipeline.training.data import ImageArrayDataset, make_loader
from pipeline.training.text_data import LengthBucketSampler, PadCollator, SortedBatchSampler, TokenDataset, tokenize


@dataclass
class FoldInputs:
    net: nn.Module
    train: Dataset
    valid: Dataset
    test: Dataset
    collate: Callable | None = None  # None: torch's default (stacks equal-sized images)
    tokenizer: object | None = None  # text models: saved beside the fold's checkpoint

    def save_tokenizer(self, fold_dir: Path) -> None:
        """Keep the fold's tokenizer (the LSTM's vocabulary) with its checkpoint."""
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(fold_dir / "tokenizer")

    def train_loader(self, cfg: DictConfig, seed: int) -> DataLoader:
        bs, workers = cfg.model.batch_size, cfg.data.num_workers
        if isinstance(self.train, TokenDataset) and cfg.model.bucket_by_length:
            sampler = LengthBucketSampler(self.train.lengths, bs, seed, drop_last=len(self.train) > bs)
            return DataLoader(self.train, batch_sampler=sampler, collate_fn=self.collate, num_workers=workers,
                              persistent_workers=workers > 0)
        return make_loader(self.train, bs, train=True, num_workers=workers, seed=seed, collate_fn=self.collate)

    def eval_loader(self, dataset: Dataset, cfg: DictConfig) -> tuple[DataLoader, np.ndarray]:
        """A loader for validation or prediction, and the dataset row of each output row, in order.

        Text rows go in order of length (least padding); the returned order undoes that.
        """
        bs, workers = cfg.model.batch_size, cfg.data.num_workers
        if isinstance(dataset, TokenDataset):
            sampler = SortedBatchSampler(dataset.lengths, bs)
            return DataLoader(dataset, batch_sampler=sampler, collate_fn=self.collate, num_workers=workers), sampler.order
        return make_loader(dataset, bs, train=False, num_workers=workers, seed=0), np.arange(len(dataset))


def fold_inputs(cfg: DictConfig, data: PreparedData, is_valid: np.ndarray) -> FoldInputs:
    """The network and datasets of the fold whose validation rows are `is_valid`."""
    target = data.train["target"].to_numpy()
    family = family_module(cfg.model.family)
    if cfg.competition.modality == "text":
        column = cfg.competition.text.column
        train_texts, test_texts = data.train[column].tolist(), data.test[column].tolist()
        fitted_on = [t for t, v in zip(train_texts, is_valid) if not v]
        tokenizer = family.make_tokenizer(cfg.model, fitted_on, io.root(cfg))
        cache = io.root(cfg) / cfg.paths.cache
        train_ids, train_offsets = tokenize(train_texts, tokenizer, cfg.model.max_length, cache)
        test_ids, test_offsets = tokenize(test_texts, tokenizer, cfg.model.max_length, cache)
        rows = np.arange(len(train_texts))
        return FoldInputs(
            net=family.build(cfg.model, tokenizer, n_logits(cfg.competition), io.root(cfg)),
            train=TokenDataset(train_ids, train_offsets, rows[~is_valid], target[~is_valid]),
            valid=TokenDataset(train_ids, train_offsets, rows[is_valid], target[is_valid]),
            test=TokenDataset(test_ids, test_offsets, np.arange(len(test_texts))),
            collate=PadCollator(tokenizer.pad_token_id),
            tokenizer=tokenizer,
        )
    images = np.array(data.train_images)  # into memory: a copy, off the read-only memory map
    channels, height, width = images.shape[1:]
    return FoldInputs(
        net=family.build(cfg.model, channels, height, width, n_logits(cfg.competition)),
        train=ImageArrayDataset(images[~is_valid], target[~is_valid]),
        valid=ImageArrayDataset(images[is_valid], target[is_valid]),
        test=ImageArrayDataset(np.array(data.test_images)),
    )
