"""Build the `animals` competition's raw files from the animal-mnist package (offline).

    python competitions/animals/build.py            # writes data/animals/raw/ and data/animals/private/

Steps: read the packaged arrays with an unpickler that allows numpy arrays only, drop exact duplicate
images (284), shuffle, split 80/20 into train and test stratified by class with a fixed seed,
and write Kaggle's layout: train.csv (id, label), test.csv (id), sample_submission.csv (id, label),
images/<id>.png; the test labels go to private/solution.csv only.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import shutil
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
SEED = 2024


# The package's files are pickles of plain arrays: these are the only globals an array needs.
# Anything else (even inside numpy, which has functions that run code) is refused.
ARRAY_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                 ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                 ("numpy._core.multiarray", "scalar")}


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file: only numpy arrays are expected")


def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    folder = files("animal_mnist") / "data" / "Animal_MNIST"
    images, labels = (ArrayOnlyUnpickler(io.BytesIO(gzip.decompress((folder / name).read_bytes()))).load()
                      for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"))
    return np.asarray(images, dtype=np.uint8), np.asarray(labels).astype(np.int64).ravel()


def build(out: Path, test_fraction: float = 0.2) -> None:
    from PIL import Image
    from sklearn.model_selection import train_test_split

    images, labels = load_arrays()
    # exact duplicates would leak between folds and between train and test
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    keep = np.sort(first)
    images, labels = images[keep], labels[keep]
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(images))  # labels are stored in sorted blocks: shuffle before naming
    images, labels = images[order], labels[order]
    ids = np.array([f"{i:05d}" for i in range(len(images))])
    train_idx, test_idx = train_test_split(np.arange(len(images)), test_size=test_fraction, stratify=labels, random_state=SEED)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)

    raw, private = out / "raw", out / "private"
    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw" / "images").mkdir(parents=True)
    (tmp / "private").mkdir()
    for i, image in zip(ids, images):
        Image.fromarray(image, mode="L").save(tmp / "raw" / "images" / f"{i}.png", optimize=False)
    names = np.array(CLASSES)[labels]
    pd.DataFrame({"id": ids[train_idx], "label": names[train_idx]}).to_csv(tmp / "raw" / "train.csv", index=False)
    pd.DataFrame({"id": ids[test_idx]}).to_csv(tmp / "raw" / "test.csv", index=False)
    pd.DataFrame({"id": ids[test_idx], "label": CLASSES[0]}).to_csv(tmp / "raw" / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids[test_idx], "label": names[test_idx]}).to_csv(tmp / "private" / "solution.csv", index=False)
    # swap the finished folders in, so an interrupted build never leaves a partial data set
    out.mkdir(parents=True, exist_ok=True)
    for part in (raw, private):
        shutil.rmtree(part, ignore_errors=True)
        (tmp / part.name).rename(part)
    shutil.rmtree(tmp)
    print(f"animals: {len(keep)} unique images ({10000 - len(keep)} duplicates dropped): "
          f"{len(train_idx)} train, {len(test_idx)} test -> {raw}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/animals"), help="competition data folder")
    build(parser.parse_args().out)
