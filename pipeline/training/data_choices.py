"""Defaults chosen from the data: `model.max_length: auto` and `model.class_weights: auto`, resolved by the stages.

The rules, one place (the README's "Defaults fitted to the data" and the model files' comments say the same):
- max_length auto: the smallest multiple of 8 covering the 95th percentile of the training texts'
  lengths in the model's own tokens, capped by the positions the model can read (a Transformer's
  max_position_embeddings); at least 8.
- class_weights auto: `balanced` where the competition's metric averages over classes (macro-F1) and
  the imbalance ratio (most frequent class over least frequent) is above 3; `none` otherwise, and
  always for regression or a user's own loss (`model.loss`).

`choose_from_data` writes the chosen values into the config the stage trains with, and lists the
keys under `model.chosen_from_data`: the saved config.yaml holds numbers, so a rerun of it is exact,
and an explicit value in the model's file or on the command line is never replaced. A fold's resume
key reads those keys as `auto` (pipeline/training/reads.py): the same config on the same data
resolves them the same way, so the config before resolution finds the folds of the one after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, open_dict

from pipeline import io
from pipeline.data.prepared import PreparedData
from pipeline.data.profile import imbalance_ratio
from pipeline.models import family

log = logging.getLogger(__name__)

AUTO = "auto"
COVERED_PERCENTILE = 95  # max_length auto covers this share of the training texts whole
LENGTH_STEP = 8  # ... rounded up to a multiple of this (tensor cores like multiples of 8)
MACRO_METRICS = frozenset({"macro_f1"})  # metrics averaging over classes: a rare class counts as much as a common one
IMBALANCE_THRESHOLD = 3.0  # class_weights auto turns `balanced` on above this ratio


@dataclass
class DataChoices:
    """What `choose_from_data` set: key -> value, and a sentence each saying why."""

    made: dict[str, object] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def token_lengths(model: DictConfig, texts: Sequence[str], root: Path | None) -> np.ndarray:
    """Each text's length in the model's own tokens, special tokens included, untruncated."""
    tokenizer = family(model.family).builders().make_tokenizer(model, list(texts), root)
    backend = tokenizer.backend_tokenizer  # a fresh object: changing its settings touches nothing else
    backend.no_truncation()
    backend.no_padding()
    return np.fromiter((len(e.ids) for e in backend.encode_batch(list(texts))), dtype=np.int64, count=len(texts))


def max_positions(model: DictConfig, root: Path | None) -> int | None:
    """The most tokens the model can read (None: no limit, e.g. an LSTM)."""
    limit = getattr(family(model.family).builders(), "max_positions", None)
    return limit(model, root) if limit is not None else None


def auto_max_length(lengths: np.ndarray, limit: int | None) -> int:
    """The rule of max_length auto on token lengths `lengths` (see the module's docstring)."""
    covered = int(np.ceil(np.percentile(lengths, COVERED_PERCENTILE))) if len(lengths) else 0
    value = max(LENGTH_STEP, -(-covered // LENGTH_STEP) * LENGTH_STEP)
    return min(value, limit) if limit else value


def balanced_weights(target: np.ndarray, n_classes: int) -> np.ndarray:
    """Loss weight per class, n / (k x count) over the k classes present (scikit-learn's `balanced`); 0 for absent."""
    counts = np.bincount(np.asarray(target, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def choose_class_weights(model: DictConfig, comp: DictConfig, target: np.ndarray) -> tuple[str, str]:
    """class_weights auto resolved: (none | balanced, why)."""
    if comp.task == "regression":
        return "none", "a regression has no classes"
    if model.get("loss"):
        return "none", "model.loss is the user's own loss"
    ratio = imbalance_ratio(np.bincount(np.asarray(target, dtype=np.int64), minlength=len(comp.classes)))
    assert ratio is not None  # prepare refuses a training set without rows
    if comp.metric not in MACRO_METRICS:
        return "none", f"the metric {comp.metric} does not average over classes (imbalance ratio {ratio:.1f})"
    if ratio <= IMBALANCE_THRESHOLD:
        return "none", f"the imbalance ratio {ratio:.1f} is not above {IMBALANCE_THRESHOLD:g}"
    return "balanced", f"the metric {comp.metric} averages over classes and the imbalance ratio is {ratio:.1f}"


def choose_from_data(cfg: DictConfig, data: PreparedData, say: Callable = log.info) -> DataChoices:
    """Resolve the model's `auto` keys from the prepared training rows, in `cfg` itself; return what was chosen.

    `say` reports each choice (the stages print them; a sweep's trials log them at debug level).
    """
    model, comp, choices = cfg.model, cfg.competition, DataChoices()
    target = data.train["target"].to_numpy()
    train_texts = data.train[comp.text.column].tolist() if comp.modality == "text" else None
    if model.get("class_weights") == AUTO:
        choices.made["class_weights"], choices.reasons["class_weights"] = choose_class_weights(model, comp, target)
    if model.get("max_length") == AUTO and comp.modality == "text":  # a user's network on images reads no tokens
        lengths = token_lengths(model, train_texts or [], io.root(cfg))
        limit = max_positions(model, io.root(cfg))
        value = auto_max_length(lengths, limit)
        truncated = float((lengths > value).mean()) if len(lengths) else 0.0
        capped = f", capped by the model's {limit} positions" if limit and value == limit else ""
        choices.made["max_length"] = value
        choices.reasons["max_length"] = (
            f"the {COVERED_PERCENTILE}th percentile of the training texts is "
            f"{np.percentile(lengths, COVERED_PERCENTILE):.0f} tokens{capped}; it truncates {truncated:.1%} of them"
        )
    if choices.made:
        with open_dict(model):
            for key, value in choices.made.items():
                model[key] = value
            model.chosen_from_data = sorted(set(model.get("chosen_from_data") or []) | set(choices.made))
        for key, value in choices.made.items():
            say(f"{model.name}: model.{key}={value}, chosen from the data: {choices.reasons[key]}")
    return choices
