"""Stage 1, prepare: validate the raw files, assign folds, decode images once.

Writes into a prepared folder (the pipeline's `outputs/<competition>/prepared/` by default):
  train.parquet       id, target (class index or value), fold, [group], [text]
  test.parquet        id, [text], in test.csv's order
  train_images.npy    uint8 (N, C, H, W), rows in train.parquet's order (image competitions)
  test_images.npy
  meta.json           row counts, class balance per fold, and the key `train` checks it against
  config.yaml         the resolved config used
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline import io
from pipeline.data.folds import assign_folds
from pipeline.data.raw import load_raw

log = logging.getLogger(__name__)


@dataclass
class PrepareResult:
    folder: Path
    n_train: int
    n_test: int
    n_folds: int


def prepare_key(cfg: DictConfig) -> str:
    """What the prepared data depends on: the competition's config, the row limit and the raw tables."""
    parts = {
        "competition": OmegaConf.to_container(cfg.competition, resolve=True),
        "limit_train_rows": cfg.data.limit_train_rows,
    }
    folder = io.raw_dir(cfg)
    for name in ("train", "test", "sample_submission"):
        path = folder / cfg.competition.files[name]
        parts[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _limit_rows(train: pd.DataFrame, limit: int | None, task: str, seed: int) -> pd.DataFrame:
    if limit is None or limit >= len(train):
        return train
    from sklearn.model_selection import train_test_split

    stratify = train["target"] if task != "regression" else None
    kept, _ = train_test_split(train, train_size=limit, stratify=stratify, random_state=seed)
    return kept.sort_index().reset_index(drop=True)


def prepare(cfg: DictConfig, folder: Path | None = None) -> PrepareResult:
    """Validate raw files, assign folds and cache decoded images into `folder`."""
    comp = cfg.competition
    folder = Path(folder or io.prepared_dir(cfg))
    raw = load_raw(cfg)
    train = _limit_rows(raw.train, cfg.data.limit_train_rows, comp.task, comp.cv.seed)
    groups = train["group"].to_numpy() if "group" in train else None
    train["fold"] = assign_folds(train["target"].to_numpy(), groups, comp.cv, comp.task)

    images = {}
    if comp.modality == "image":
        from pipeline.data.images import decode_images

        image_folder = raw.folder / comp.files.images
        for split, frame in (("train", train), ("test", raw.test)):
            log.info("decoding %d %s images from %s", len(frame), split, image_folder)
            images[split] = decode_images(frame[comp.id_column].tolist(), image_folder, comp.files.image_suffix, comp.image,
                                          what=f"{split} images")

    meta = {
        "key": prepare_key(cfg),
        "n_train": len(train),
        "n_test": len(raw.test),
        "n_folds": comp.cv.n_splits,
        "rows_per_fold": train["fold"].value_counts().sort_index().tolist(),
    }
    if comp.task != "regression":
        table = pd.crosstab(train["fold"], train["target"]).reindex(columns=range(len(comp.classes)), fill_value=0)
        meta["class_counts_per_fold"] = {str(k): v for k, v in zip(comp.classes, table.to_numpy().T.tolist())}

    # Everything is validated and computed: now write, all or nothing.
    with io.staging_dir(folder) as tmp:
        io.write_parquet(tmp / "train.parquet", train)
        io.write_parquet(tmp / "test.parquet", raw.test)
        for split, array in images.items():
            io.write_npy(tmp / f"{split}_images.npy", array)
        io.write_json(tmp / "meta.json", meta)
        io.write_config(tmp / "config.yaml", cfg)
    return PrepareResult(folder=folder, n_train=len(train), n_test=len(raw.test), n_folds=comp.cv.n_splits)


@dataclass
class PreparedData:
    """What training reads: tables plus decoded images (memory-mapped)."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_images: np.ndarray | None
    test_images: np.ndarray | None
    folder: Path


def load_prepared(cfg: DictConfig, scratch: Path) -> PreparedData:
    """The pipeline's prepared data if it matches `cfg`, else `scratch`'s if it does; otherwise prepare into `scratch`.

    An experiment with another fold count or row limit thus never trains on stale folds.
    """
    key = prepare_key(cfg)
    matches = lambda f: (f / "meta.json").is_file() and json.loads((f / "meta.json").read_text())["key"] == key  # noqa: E731
    folder = next((f for f in (io.prepared_dir(cfg), Path(scratch)) if matches(f)), None)
    if folder is None:
        log.info("no prepared data matching this config in %s: preparing into %s", io.prepared_dir(cfg), scratch)
        folder = prepare(cfg, scratch).folder
    images = {}
    for split in ("train", "test"):
        path = folder / f"{split}_images.npy"
        images[split] = np.load(path, mmap_mode="r") if path.exists() else None
    return PreparedData(
        train=pd.read_parquet(folder / "train.parquet"),
        test=pd.read_parquet(folder / "test.parquet"),
        train_images=images["train"],
        test_images=images["test"],
        folder=folder,
    )
