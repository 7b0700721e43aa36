"""Stage 1, prepare: validate the raw files, assign folds, decode images once.

Writes into a prepared folder (the pipeline's `outputs/<competition>/prepared/` by default):
  train.parquet       id, target (class index or value), fold, [group], [text]
  test.parquet        id, [text], in test.csv's order
  train_images.npy    uint8 (N, C, H, W), rows in train.parquet's order (image competitions)
  test_images.npy
  train_features.parquet  the typed feature table, rows in train.parquet's order (tabular competitions)
  test_features.parquet
  features.json       each feature's type and categories (pipeline/data/tabular.py)
  meta.json           row counts, class balance per fold, and the key `train` checks it against
  profile.json        the data profile: classes, text lengths in words and tokens, image sizes (pipeline/data/profile.py)
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
from pipeline.data.identity import files_digest, prepared_digest
from pipeline.data.image_store import streamed_identity
from pipeline.data.prepared import PreparedData, read_prepared
from pipeline.data.profile import class_summary, image_summary, length_summary, ratio, word_counts
from pipeline.data.raw import load_raw
from pipeline.data.reads import data_keys
from pipeline.data.tabular import describe
from pipeline.errors import PodiumError

log = logging.getLogger(__name__)


@dataclass
class PrepareResult:
    folder: Path
    n_train: int
    n_test: int
    n_folds: int
    features: list[list[str]] | None = None  # tabular: column, type, missing share, distinct values
    profile: dict | None = None  # pipeline/data/profile.py: what the data hold, train beside test


def prepare_key(cfg: DictConfig, images_digest: str | None = None) -> str:
    """What the prepared data depends on: the competition's config, the row limit and the content of
    the raw files it reads (the tables, and every file of the image folder: `images_digest` where the
    caller has it already, else hashed here)."""
    comp = cfg.competition
    parts = {
        "competition": OmegaConf.to_container(comp, resolve=True),
        **{key: cfg.data.get(key) for key in data_keys(comp.modality)},
    }
    folder = io.raw_dir(cfg)
    tables = [folder / comp.files[name] for name in ("train", "test", "sample_submission")]
    parts["tables"] = files_digest(tables)
    if comp.modality == "image":
        parts["images"] = images_digest or image_files_digest(cfg)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def image_files_digest(cfg: DictConfig) -> str:
    """The content of every file of the competition's image folder (hashes kept per file under paths.cache)."""
    images = io.raw_dir(cfg) / cfg.competition.files.images
    files = sorted(p for p in images.rglob("*") if p.is_file()) if images.is_dir() else []
    name = hashlib.sha256(str(images).encode()).hexdigest()[:16]
    return files_digest(files, io.root(cfg) / cfg.paths.cache / "file-hashes" / f"{name}.json")


def _limit_rows(train: pd.DataFrame, limit: int | None, comp: DictConfig) -> pd.DataFrame:
    """A stratified sample of `limit` training rows (data.limit_train_rows), or all of them; the index keeps
    each row's position in `train` (a tabular competition's features are taken by it)."""
    if limit is None or limit >= len(train):
        return train
    from sklearn.model_selection import train_test_split

    stratify = train["target"] if comp.task != "regression" else None
    if stratify is not None:
        counts = class_counts(stratify.to_numpy(), comp)
        present = {c: n for c, n in counts.items() if n}
        if limit < len(present) or min(present.values()) < 2:
            raise PodiumError(
                f"data.limit_train_rows={limit} cannot keep every class in a stratified sample of the training rows "
                f"(rows per class: {present}): each class needs at least 2 rows and the sample at least one row per "
                f"class. Raise data.limit_train_rows, or set it to null to train on every row."
            )
    kept, _ = train_test_split(train, train_size=limit, stratify=stratify, random_state=comp.cv.seed)
    return kept.sort_index()


def class_counts(target: np.ndarray, comp: DictConfig) -> dict[str, int]:
    """Training rows per class name, in `classes` order."""
    counts = np.bincount(target.astype(np.int64), minlength=len(comp.classes))
    return {c: int(n) for c, n in zip(comp.classes, counts)}


def check_classes(target: np.ndarray, comp: DictConfig) -> None:
    """Refuse a target a model cannot learn or be scored on; warn of classes too rare for every fold."""
    if comp.task == "regression":
        return
    counts = class_counts(target, comp)
    absent = [c for c, n in counts.items() if n == 0]
    present = len(counts) - len(absent)
    if present < 2:
        raise PodiumError(
            f"Every training row of {comp.name} has the same class ({[c for c, n in counts.items() if n]}): there is "
            f"nothing to learn and no fold score can be computed. Check competition.target_column and the labels "
            f"in train.csv (rows per class: {counts})."
        )
    if absent and not comp.allow_missing_classes:
        raise PodiumError(
            f"Class(es) {absent} of competition.classes never occur in the training rows (rows per class: {counts}). "
            f"Fix the spelling in `classes:` (labels are compared as written), drop the class, or set "
            f"competition.allow_missing_classes=true if the test set may hold it all the same."
        )
    rare = {c: n for c, n in counts.items() if 0 < n < comp.cv.n_splits}
    if rare and comp.cv.scheme not in ("stratified",):  # the stratified scheme refuses it in assign_folds
        log.warning(
            "class(es) %s have fewer training rows than the %d folds: some folds validate without them, "
            "and a metric that needs every class may be undefined there",
            rare,
            comp.cv.n_splits,
        )


def prepare(cfg: DictConfig, folder: Path | None = None) -> PrepareResult:
    """Validate raw files, assign folds and cache decoded images into `folder`."""
    comp = cfg.competition
    folder = Path(folder or io.prepared_dir(cfg))
    raw = load_raw(cfg)
    train = _limit_rows(raw.train, cfg.data.limit_train_rows, comp)
    features = raw.features
    if features is not None:
        features.train = features.train.iloc[train.index.to_numpy()].reset_index(drop=True)
    train = train.reset_index(drop=True)
    check_classes(train["target"].to_numpy(), comp)
    groups = train["group"].to_numpy() if "group" in train else None
    train["fold"] = assign_folds(train["target"].to_numpy(), groups, comp.cv, comp.task)

    images, seen, stored = {}, {"train": [], "test": []}, None
    if comp.modality == "image":
        from pipeline.data.image_store import read_images

        images, stored = read_images(cfg, raw.folder / comp.files.images, folder, train, raw.test, seen)

    images_digest = image_files_digest(cfg) if comp.modality == "image" else None
    meta = {
        "key": prepare_key(cfg, images_digest),
        "data": prepared_digest(
            train,
            raw.test,
            images,
            *((features.train, features.test) if features is not None else ()),
            files=streamed_identity(cfg, stored, images_digest) if stored else None,
        ),  # what fold results are computed from
        "n_train": len(train),
        "n_test": len(raw.test),
        "n_folds": comp.cv.n_splits,
        "rows_per_fold": train["fold"].value_counts().sort_index().tolist(),
    }
    if stored is not None:
        meta["images"] = stored
    if comp.task != "regression":
        table = pd.crosstab(train["fold"], train["target"]).reindex(columns=range(len(comp.classes)), fill_value=0)
        meta["class_counts_per_fold"] = {str(k): v for k, v in zip(comp.classes, table.to_numpy().T.tolist())}

    profile = data_profile(cfg, train, raw.test, seen)

    # Everything is validated and computed: now write, all or nothing.
    with io.staging_dir(folder) as tmp:
        io.write_parquet(tmp / "train.parquet", train)
        io.write_parquet(tmp / "test.parquet", raw.test)
        for split, array in images.items():
            io.write_npy(tmp / f"{split}_images.npy", array)
        if features is not None:
            io.write_parquet(tmp / "train_features.parquet", features.train)
            io.write_parquet(tmp / "test_features.parquet", features.test)
            io.write_json(tmp / "features.json", features.schema.to_json())
        io.write_json(tmp / "meta.json", meta)
        io.write_json(tmp / "profile.json", profile)
        io.write_config(tmp / "config.yaml", cfg)
    return PrepareResult(
        folder=folder,
        n_train=len(train),
        n_test=len(raw.test),
        n_folds=comp.cv.n_splits,
        features=describe(features.train, features.schema) if features is not None else None,
        profile=profile,
    )


def data_profile(cfg: DictConfig, train: pd.DataFrame, test: pd.DataFrame, seen: dict[str, list]) -> dict:
    """The data profile (pipeline/data/profile.py) of the prepared rows; `seen`: each split's image sizes and modes."""
    comp = cfg.competition
    profile: dict = {"competition": comp.name, "rows": {"train": len(train), "test": len(test)}}
    target = train["target"].to_numpy()
    if comp.task == "regression":
        profile["target"] = {k: float(getattr(np, k)(target)) for k in ("mean", "std", "min", "max")}
    else:
        profile["classes"] = class_summary(class_counts(target, comp))
    if comp.modality == "text":
        column = comp.text.column
        words = {
            split: length_summary(word_counts(frame[column])) for split, frame in (("train", train), ("test", test))
        }
        profile["text"] = {
            "words": words,
            "tokens": _token_profiles(cfg, train[column].tolist(), test[column].tolist()),
            "test_over_train": ratio(words["test"], words["train"]),
        }
    if seen["train"] or seen["test"]:
        profile["images"] = {split: image_summary(found) for split, found in seen.items()}
    return profile


def _token_profiles(cfg: DictConfig, train_texts: list[str], test_texts: list[str]) -> dict:
    """Text lengths in each text network's own tokens (the competition's models and the configured one), with the
    share its max_length truncates (an `auto` one as the rule of pipeline/training/data_choices.py resolves it)."""
    from pipeline.config.compose import compose
    from pipeline.models import family
    from pipeline.training.data_choices import auto_max_length, max_positions, token_lengths

    comp, root, profiles = cfg.competition, io.root(cfg), {}
    for name in dict.fromkeys([*comp.models, cfg.model.name]):
        try:
            model = (
                cfg.model
                if name == cfg.model.name
                else compose([f"competition={comp.name}", f"model={name}"], root).model
            )
        except PodiumError as exc:  # the model's own stage reports it in full; prepare goes on without its tokens
            log.warning("the data profile leaves out %s's token lengths: %s", name, str(exc).splitlines()[0])
            continue
        record = family(model.family)
        if record.kind != "network" or not hasattr(record.builders(), "make_tokenizer"):
            continue  # not a network reading tokens (TF-IDF counts n-grams of its own)
        lengths = {"train": token_lengths(model, train_texts, root), "test": token_lengths(model, test_texts, root)}
        limit = model.max_length
        if limit == "auto":
            limit = auto_max_length(lengths["train"], max_positions(model, root))
        profiles[name] = {split: length_summary(found, limit) for split, found in lengths.items()}
        if model.max_length == "auto":
            for summary in profiles[name].values():
                summary["max_length_auto"] = True
    return profiles


def log_profile(cfg: DictConfig, result: PrepareResult) -> None:
    """The data profile to MLflow: a run of stage `prepare` with its figures as metrics and its files as artifacts."""
    from pipeline.tracking import Tracker

    profile, tracker = result.profile or {}, Tracker.of(cfg)
    metrics = {f"rows_{split}": n for split, n in profile.get("rows", {}).items()}
    if (profile.get("classes") or {}).get("imbalance_ratio") is not None:
        metrics["imbalance_ratio"] = profile["classes"]["imbalance_ratio"]
    for split, words in (profile.get("text") or {}).get("words", {}).items():
        metrics.update({f"words_{split}_{q}": words[q] for q in ("p50", "p95") if q in words})
    with tracker.run(f"prepare {cfg.competition.name}", stage="prepare"):
        tracker.log_metrics(metrics)
        tracker.log_artifacts([result.folder / "profile.json", result.folder / "meta.json"])


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
    return read_prepared(folder)
