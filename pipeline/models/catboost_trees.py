"""CatBoost (`family: catboost`): gradient-boosted oblivious trees with ordered target statistics for categories.

Each fold fits `catboost.CatBoostRegressor` / `CatBoostClassifier` on the fold's typed feature table
(categorical columns passed as `cat_features`, a missing category as its own value), stops early on
its validation rows with the competition's metric where CatBoost computes it, and is saved in
CatBoost's own binary model format (`model.cbm`), loaded by CatBoost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline.models import EstimatorFold
from pipeline.models.gbdt import (
    Fitted,
    check_classes,
    classes_of,
    fit_failed,
    native_metric,
    params,
    positional,
    report_round,
    save_sidecar,
)

FILES = ("model.cbm", "gbdt.json")
RESERVED = (
    "random_seed",
    "random_state",
    "thread_count",
    "task_type",
    "iterations",
    "n_estimators",
    "learning_rate",
    "eval_metric",
    "early_stopping_rounds",
    "cat_features",
)
MISSING_CATEGORY = "<missing>"  # CatBoost refuses NaN in a categorical column: a missing category is this value


def _frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The typed table as CatBoost reads it: categories as strings, a missing one as MISSING_CATEGORY."""
    out = positional(rows)
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(object).where(out[column].notna(), MISSING_CATEGORY).astype(str)
    return out


def _categorical(rows: pd.DataFrame) -> list[int]:
    return [i for i, dtype in enumerate(rows.dtypes) if isinstance(dtype, pd.CategoricalDtype)]


def fit(model: DictConfig, fold: EstimatorFold) -> Fitted:
    """The fold's model, stopped early on its validation rows when `model.early_stopping_rounds` is set."""
    import catboost

    check_classes(fold, model)
    given = params(model, RESERVED, f"conf/model/{model.name}.yaml")
    kind = catboost.CatBoostRegressor if fold.task == "regression" else catboost.CatBoostClassifier
    stopping = model.early_stopping_rounds if fold.valid_rows is not None else None
    metric = native_metric("catboost", fold.metric, fold.task)
    estimator = kind(
        iterations=model.n_estimators,
        learning_rate=model.learning_rate,
        random_seed=fold.seed,
        thread_count=fold.threads,
        task_type="GPU" if fold.accelerator == "gpu" else "CPU",
        eval_metric=metric,
        early_stopping_rounds=stopping or None,
        allow_writing_files=False,  # no catboost_info/ folder in the working directory
        verbose=False,
        **given,
    )
    cat = _categorical(fold.train_rows)
    try:
        estimator.fit(
            _frame(fold.train_rows),
            fold.target,
            cat_features=cat,
            eval_set=(_frame(fold.valid_rows), fold.valid_target) if fold.valid_rows is not None else None,
            use_best_model=bool(stopping),
            callbacks=[_Pruning(fold, metric)] if fold.on_iteration is not None else None,
        )
    except Exception as exc:  # the library's refusal of a parameter or of the data
        raise fit_failed("CatBoost", model, exc) from None
    return _fitted(estimator, classes_of(fold.task, fold.target), list(fold.train_rows.columns), fold.task)


class _Pruning:
    """A CatBoost callback reporting the validation metric to a sweep's pruner (False: stop the fit)."""

    def __init__(self, fold: EstimatorFold, metric: str):
        self.fold, self.metric = fold, metric

    def after_iteration(self, info) -> bool:
        scores = info.metrics.get("validation", {})
        values = scores.get(self.metric) or next(iter(scores.values()), [])
        return not (values and report_round(self.fold, info.iteration - 1, float(values[-1]), self.metric))


def _fitted(estimator: Any, classes: np.ndarray, features: list[str], task: str) -> Fitted:
    def predict(m, rows):
        return m.predict(_frame(rows)) if task == "regression" else _proba(m.predict_proba(_frame(rows)))

    gain = np.asarray(estimator.get_feature_importance(), dtype=np.float64)  # PredictionValuesChange
    return Fitted(estimator, classes, predict, features, int(estimator.tree_count_), gain)


def _proba(probabilities: np.ndarray) -> np.ndarray:
    """Binary: the positive class's column (Fitted.predict_proba stacks both); multiclass: all columns."""
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


def save(fitted: Fitted, folder: Path) -> None:
    """CatBoost's binary model (the trees kept by early stopping) and gbdt.json, each written by rename."""
    from pipeline import io

    folder.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(folder / FILES[0]) as tmp:
        fitted.model.save_model(str(tmp), format="cbm")
    save_sidecar(folder, fitted)


def load(folder: Path, model: DictConfig) -> Fitted:
    """A fold saved by `save`, read by CatBoost's own loader (a model file: no code runs)."""
    import catboost

    from pipeline.models.gbdt import read_sidecar

    side = read_sidecar(folder)
    task = "regression" if not side["classes"] else "classification"
    kind = catboost.CatBoostRegressor if task == "regression" else catboost.CatBoostClassifier
    estimator = kind().load_model(str(folder / FILES[0]), format="cbm")
    return _fitted(estimator, np.asarray(side["classes"]), side["features"], task)
