"""What a competition's raw files say about its config: id, target and text columns, classes, image size.

`podium new` reads Kaggle's files when they are already in data/<name>/raw/ and proposes the keys
whose right value depends on the data, each with where it was read; a key it cannot tell stays
`???` for the user to fill in, so no default that fits the demos passes unnoticed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_CLASSES = 100  # more distinct target values than this: not a list to write out by hand
SAMPLED_IMAGES = 50  # images opened to find their size and mode


@dataclass
class Guess:
    """Proposed values (None: not found) and, per key, the file it was read from."""

    id_column: str | None = None
    target_column: str | None = None
    classes: list[str] | None = None
    text_column: str | None = None
    images: str | None = None  # the image folder, inside raw/
    image_suffix: str | None = None
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    resize: bool = False  # the sampled images differ in size
    source: dict[str, str] = field(default_factory=dict)  # key -> "train.csv" ...


def read_raw(raw: Path, modality: str, task: str) -> Guess | None:
    """The proposals for the files in `raw` (Kaggle's train.csv, test.csv, sample_submission.csv); None without train.csv."""
    if not (raw / "train.csv").is_file():
        return None
    train = pd.read_csv(raw / "train.csv", dtype=str, keep_default_na=False)
    test = _columns(raw / "test.csv")
    sample = _columns(raw / "sample_submission.csv")
    guess = Guess()
    _ids_and_target(guess, train, test, sample)
    if task != "regression" and guess.target_column:
        _classes(guess, train, sample)
    if modality == "text":
        _text_column(guess, train, test)
    if modality == "image" and guess.id_column:
        _images(guess, raw, train[guess.id_column].tolist())
    return guess


def _columns(path: Path) -> list[str]:
    return list(pd.read_csv(path, dtype=str, nrows=0).columns) if path.is_file() else []


def _ids_and_target(guess: Guess, train: pd.DataFrame, test: list[str], sample: list[str]) -> None:
    # Kaggle's sample submission starts with the id column, in train.csv and test.csv alike.
    if sample and sample[0] in train.columns and (not test or sample[0] in test):
        guess.id_column, guess.source["id_column"] = sample[0], "sample_submission.csv's first column"
    else:
        shared = [c for c in train.columns if (not test or c in test) and train[c].is_unique]
        if shared:
            guess.id_column, guess.source["id_column"] = shared[0], "the first column of unique values"
    # The target: what train.csv has and test.csv lacks (a group or fold column may be among them).
    only_train = [c for c in train.columns if c != guess.id_column and test and c not in test]
    in_sample = [c for c in only_train if c in sample]
    pick = in_sample if len(in_sample) == 1 else only_train if len(only_train) == 1 else []
    if pick:
        guess.target_column, guess.source["target_column"] = pick[0], "in train.csv, not in test.csv"


def _classes(guess: Guess, train: pd.DataFrame, sample: list[str]) -> None:
    values = sorted(set(train[guess.target_column]) - {""})
    per_class = [c for c in sample[1:] if c in values]
    if len(per_class) == len(values) and len(values) > 1:  # a probability column per class: its order
        guess.classes, guess.source["classes"] = per_class, "sample_submission.csv's class columns, in order"
    elif 1 < len(values) <= MAX_CLASSES:
        guess.classes, guess.source["classes"] = values, f"train.csv's {guess.target_column} values, sorted"


def _text_column(guess: Guess, train: pd.DataFrame, test: list[str]) -> None:
    candidates = [
        c for c in train.columns if c not in (guess.id_column, guess.target_column) and (not test or c in test)
    ]
    lengths = {c: train[c].str.len().mean() for c in candidates}
    if lengths:
        guess.text_column = max(lengths, key=lengths.__getitem__)
        guess.source["text.column"] = "the longest texts of train.csv"


def _images(guess: Guess, raw: Path, ids: list[str]) -> None:
    from PIL import Image

    folders = [d for d in sorted(raw.iterdir()) if d.is_dir()]
    for folder in folders:
        suffixes = Counter(p.suffix.lower() for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not suffixes:
            continue
        suffix = next(p.suffix for p in folder.iterdir() if p.suffix.lower() == suffixes.most_common(1)[0][0])
        sampled = [folder / f"{i}{suffix}" for i in ids[:SAMPLED_IMAGES] if (folder / f"{i}{suffix}").is_file()]
        if not sampled:
            continue
        sizes, modes = Counter(), Counter()
        for path in sampled:
            with Image.open(path) as image:
                sizes[image.size] += 1
                modes[image.mode] += 1
        (width, height), _ = sizes.most_common(1)[0]
        grey = all(mode in ("1", "L", "LA", "I", "I;16", "F") for mode in modes)
        guess.images, guess.image_suffix = folder.name, suffix
        guess.width, guess.height, guess.channels, guess.resize = width, height, 1 if grey else 3, len(sizes) > 1
        guess.source["image"] = f"{len(sampled)} images of {folder.name}/" + (
            f" (sizes differ; the commonest, {width}x{height})" if len(sizes) > 1 else ""
        )
        return
