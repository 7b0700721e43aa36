"""A fold's inputs: the network and the train / validation / test datasets, per modality.

Image folds take rows of the decoded image array of `prepare`, or its image files
(pipeline/training/image_data.py); table folds its typed feature table. Text folds build the family's tokenizer
(the LSTM's vocabulary from the fold's training rows only, so validation and test words never
shape it) and tokenize through the on-disk cache; the tokenizer is kept for saving beside the
fold's checkpoint, so the saved model can be used again on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pipeline.data.image_store import image_reader
from pipeline.data.prepared import PreparedData
from pipeline.models import family
from pipeline.training import data as loaders
from pipeline.training.data import EvalBatches, TableDataset
from pipeline.training.distributed import World
from pipeline.training.image_data import ImageArrayDataset, ImageFileDataset
from pipeline.training.spec import FoldSpec
from pipeline.training.text_data import LengthBucketSampler, PadCollator, TokenDataset, tokenize


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

    def train_loader(self, spec: FoldSpec, seed: int, world: World = World()) -> DataLoader:
        """Seeded training batches of `model.batch_size` rows (similar lengths for text), this process's share."""
        bs = spec.model.batch_size
        if isinstance(self.train, TokenDataset) and spec.model.bucket_by_length:
            batches = LengthBucketSampler(self.train.lengths, bs, seed, drop_last=len(self.train) > bs)
        else:
            batches = loaders.shuffled_batches(len(self.train), bs, seed)
        return loaders.train_loader(self.train, batches, world, spec.loading, self.collate)

    def eval_loader(self, dataset: Dataset, spec: FoldSpec, world: World = World()) -> tuple[DataLoader, np.ndarray]:
        """A loader for validation or prediction of `dataset` (`eval_loader`), with this fold's collate."""
        return eval_loader(dataset, spec, self.collate, world)


def eval_loader(
    dataset: Dataset, spec: FoldSpec, collate: Callable | None = None, world: World = World()
) -> tuple[DataLoader, np.ndarray]:
    """A loader for validation or prediction (this process's batches), and the dataset row of each output row.

    Text rows go in order of length (least padding); the returned positions undo that.
    """
    order = np.argsort(dataset.lengths, kind="stable") if isinstance(dataset, TokenDataset) else np.arange(len(dataset))
    batches = EvalBatches(order, spec.model.batch_size, world)
    return loaders.eval_loader(dataset, batches, spec.loading, collate), batches.positions


def fold_inputs(spec: FoldSpec, data: PreparedData, is_valid: np.ndarray) -> FoldInputs:
    """The network and datasets of the fold whose validation rows are `is_valid`."""
    target = data.train["target"].to_numpy()
    builders, model = family(spec.model.family).builders(), spec.model
    if data.features is not None:  # a table: the network's scaling fitted to the fold's training rows
        schema, table = data.features.schema, data.features.train
        fitted_on = table.iloc[np.flatnonzero(~is_valid)]
        net = builders.build_table(model, schema, spec.n_logits, spec.root, fitted_on, target[~is_valid], spec.task)
        numeric, categorical = builders.table_tensors(table, schema)
        test_numeric, test_categorical = builders.table_tensors(data.features.test, schema)
        return FoldInputs(
            net=net,
            train=TableDataset(numeric[~is_valid], categorical[~is_valid], target[~is_valid]),
            valid=TableDataset(numeric[is_valid], categorical[is_valid], target[is_valid]),
            test=TableDataset(test_numeric, test_categorical),
        )
    if spec.text_column is not None:
        train_texts, test_texts = data.train[spec.text_column].tolist(), data.test[spec.text_column].tolist()
        fitted_on = [t for t, v in zip(train_texts, is_valid) if not v]
        tokenizer = builders.make_tokenizer(model, fitted_on, spec.root)
        cut = model.get("truncation", "head")
        train_ids, train_offsets = tokenize(train_texts, tokenizer, model.max_length, spec.cache, cut)
        test_ids, test_offsets = tokenize(test_texts, tokenizer, model.max_length, spec.cache, cut)
        rows = np.arange(len(train_texts))
        return FoldInputs(
            net=builders.build_text(model, tokenizer, spec.n_logits, spec.root),
            train=TokenDataset(train_ids, train_offsets, rows[~is_valid], target[~is_valid]),
            valid=TokenDataset(train_ids, train_offsets, rows[is_valid], target[is_valid]),
            test=TokenDataset(test_ids, test_offsets, np.arange(len(test_texts))),
            collate=PadCollator(tokenizer.pad_token_id),
            tokenizer=tokenizer,
        )
    return image_inputs(spec, data, is_valid, target)


def image_inputs(spec: FoldSpec, data: PreparedData, is_valid: np.ndarray, target: np.ndarray) -> FoldInputs:
    """An image fold's datasets, by the prepared data's path: rows of the memory-mapped array (`cache`, never
    copied whole) or files decoded per item (`stream`); training's with the per-image augmentation."""
    from pipeline.training.image_data import build_items

    image = spec.image
    net = (
        family(spec.model.family)
        .builders()
        .build_image(spec.model, image.channels, image.height, image.width, spec.n_logits, spec.root)
    )
    items = build_items(spec.augment, image)
    test = (
        ImageArrayDataset(data.test_images)
        if data.image_files is None
        else ImageFileDataset(data.image_files["test"], image_reader(image, spec.loading, spec.cache))
    )
    return FoldInputs(
        net=net,
        train=image_rows(spec, data, np.flatnonzero(~is_valid), target[~is_valid], items),
        valid=image_rows(spec, data, np.flatnonzero(is_valid), target[is_valid]),
        test=test,
    )


def image_rows(
    spec: FoldSpec, data: PreparedData, rows: np.ndarray, targets: np.ndarray | None = None, items=None
) -> Dataset:
    """Training rows `rows` as an image dataset of the prepared data's path, augmented per image by `items`."""
    if data.image_files is None:
        return ImageArrayDataset(data.train_images, targets, rows, items)
    files = data.image_files["train"]
    reader = image_reader(spec.image, spec.loading, spec.cache)
    return ImageFileDataset([files[r] for r in rows], reader, targets, items)
