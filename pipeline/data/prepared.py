"""The prepared data as training reads it: the tables `prepare` wrote and its images (pipeline/data/image_store.py):
decoded and memory-mapped (`cache`), or the files' paths (`stream`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data.raw import Features


@dataclass
class PreparedData:
    """What training reads: tables plus decoded images (memory-mapped)."""

    train: pd.DataFrame
    test: pd.DataFrame
    train_images: np.ndarray | None
    test_images: np.ndarray | None
    folder: Path
    identity: str  # prepared_digest of all the above: fold results saved for other data are not reused
    features: Features | None = None  # tabular competitions: the typed feature tables and their schema
    image_files: dict[str, list[Path]] | None = None  # streamed images: each split's file per row ("train", "test")


def read_prepared(folder: Path) -> PreparedData:
    """The prepared folder `folder` (pipeline/prepare.py wrote it); images are mapped, not read."""
    images = {}
    for split in ("train", "test"):
        path = folder / f"{split}_images.npy"
        images[split] = np.load(path, mmap_mode="r") if path.exists() else None
    meta = json.loads((folder / "meta.json").read_text())
    train, test = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")
    stored = meta.get("images") or {}
    image_files = None
    if stored.get("store") == "stream":  # the folder is kept relative to the prepared folder: it moves with the project
        source = (folder / stored["folder"]).resolve()
        image_files = {
            split: [source / f"{i}{stored['suffix']}" for i in frame[stored["id_column"]]]
            for split, frame in (("train", train), ("test", test))
        }
    features = None
    if (folder / "features.json").is_file():
        from pipeline.data.tabular import TableSchema, with_categories

        schema = TableSchema.from_json(json.loads((folder / "features.json").read_text()))
        features = Features(
            schema,
            *(with_categories(pd.read_parquet(folder / f"{s}_features.parquet"), schema) for s in ("train", "test")),
        )
    return PreparedData(
        features=features,
        identity=meta["data"],
        train=train,
        test=test,
        train_images=images["train"],
        test_images=images["test"],
        folder=folder,
        image_files=image_files,
    )
