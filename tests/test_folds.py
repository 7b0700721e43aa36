"""Folds: every row validated exactly once, balanced strata, groups kept whole."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.data.folds import assign_folds
from pipeline.errors import PodiumError

pytestmark = pytest.mark.fast  # no training, no servers


def cv(**kw):
    return OmegaConf.create({"scheme": "stratified", "n_splits": 5, "seed": 42, "group_column": None, **kw})


def test_stratified_folds_are_complete_disjoint_and_balanced():
    y = np.repeat(np.arange(3), [300, 150, 50])
    folds = assign_folds(y, None, cv(), "multiclass")
    assert folds.shape == y.shape and set(folds) == set(range(5))  # each row in exactly one fold
    for k in range(5):
        counts = np.bincount(y[folds == k], minlength=3)
        assert np.abs(counts - np.array([60, 30, 10])).max() <= 1


def test_same_seed_same_folds_other_seed_other_folds():
    y = np.arange(200) % 2
    a, b, c = (assign_folds(y, None, cv(seed=s), "binary") for s in (1, 1, 2))
    assert (a == b).all() and not (a == c).all()


def test_group_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 40, 600).astype(str)
    y = rng.integers(0, 2, 600)
    for scheme in ("group", "stratified_group"):
        folds = assign_folds(y, groups, cv(scheme=scheme, group_column="g"), "binary")
        per_group = {g: set(folds[groups == g]) for g in np.unique(groups)}
        assert all(len(s) == 1 for s in per_group.values())
        assert set(folds) == set(range(5))


def test_kfold_for_regression_and_stratified_refused():
    y = np.linspace(0, 1, 100)
    assert set(assign_folds(y, None, cv(scheme="kfold"), "regression")) == set(range(5))
    with pytest.raises(PodiumError, match="scheme=kfold"):
        assign_folds(y, None, cv(), "regression")


def test_rare_class_with_too_few_rows_is_refused():
    y = np.array([0] * 50 + [1] * 3)
    with pytest.raises(PodiumError, match="rarest class has 3 training rows"):
        assign_folds(y, None, cv(), "binary")
