"""Assign each training row to exactly one validation fold."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from pipeline.errors import PodiumError


def assign_folds(target: np.ndarray, groups: np.ndarray | None, cv: DictConfig, task: str) -> np.ndarray:
    """Fold index (0..n_splits-1) of every row, by the configured scheme and seed."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    n = len(target)
    k = cv.n_splits
    if n < k:
        raise PodiumError(f"Only {n} training rows for {k} folds. Lower competition.cv.n_splits or add data.")
    stratified = cv.scheme in ("stratified", "stratified_group")
    if stratified and task == "regression":
        raise PodiumError(
            f"cv scheme {cv.scheme!r} stratifies by class, but the task is regression. "
            f"Use competition.cv.scheme=kfold (or group)."
        )
    if stratified:
        counts = np.bincount(target.astype(int))
        counts = counts[counts > 0]
        if cv.scheme == "stratified" and counts.min() < k:
            raise PodiumError(
                f"The rarest class has {counts.min()} training rows, fewer than the {k} folds: stratified "
                f"folds cannot all contain it. Lower competition.cv.n_splits or use cv.scheme=kfold."
            )
    splitters = {
        "stratified": lambda: StratifiedKFold(k, shuffle=True, random_state=cv.seed),
        "kfold": lambda: KFold(k, shuffle=True, random_state=cv.seed),
        "group": lambda: GroupKFold(k, shuffle=True, random_state=cv.seed),
        "stratified_group": lambda: StratifiedGroupKFold(k, shuffle=True, random_state=cv.seed),
    }
    if cv.scheme in ("group", "stratified_group") and len(np.unique(groups)) < k:
        raise PodiumError(
            f"Only {len(np.unique(groups))} distinct groups for {k} folds. Lower competition.cv.n_splits."
        )
    folds = np.full(n, -1, dtype=np.int64)
    for fold, (_, valid) in enumerate(splitters[cv.scheme]().split(np.zeros(n), target, groups)):
        folds[valid] = fold
    assert (folds >= 0).all(), "every row gets a validation fold"
    return folds
