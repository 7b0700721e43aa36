"""XGBoost (`family: xgboost`): gradient-boosted trees, histogram method, categorical columns split natively.

Each fold fits `xgboost.XGBRegressor` / `XGBClassifier` on the fold's typed feature table
(`enable_categorical`: pandas categoricals are split on directly, no one-hot encoding), stops early
on its validation rows and is saved in XGBoost's own UBJSON model format (`model.ubj`), loaded by
`xgboost.Booster`. On CPU machines install the `xgboost-cpu` wheel (the `xgboost` one bundles CUDA).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
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

FILES = ("model.ubj", "gbdt.json")
RESERVED = (
    "random_state",
    "seed",
    "n_jobs",
    "nthread",
    "device",
    "n_estimators",
    "learning_rate",
    "eval_metric",
    "early_stopping_rounds",
    "enable_categorical",
)


def fit(model: DictConfig, fold: EstimatorFold) -> Fitted:
    """The fold's booster, stopped early on its validation rows when `model.early_stopping_rounds` is set."""
    import xgboost

    check_classes(fold, model)
    given = params(model, RESERVED, f"conf/model/{model.name}.yaml")
    kind = xgboost.XGBRegressor if fold.task == "regression" else xgboost.XGBClassifier
    stopping = model.early_stopping_rounds if fold.valid_rows is not None else None
    metric = native_metric("xgboost", fold.metric, fold.task)
    estimator = kind(
        n_estimators=model.n_estimators,
        learning_rate=model.learning_rate,
        random_state=fold.seed,
        n_jobs=fold.threads,
        device="cuda" if fold.accelerator == "gpu" else "cpu",
        tree_method=given.pop("tree_method", "hist"),
        enable_categorical=True,
        eval_metric=metric,
        early_stopping_rounds=stopping or None,
        callbacks=[_pruning(fold, metric)] if fold.on_iteration is not None else None,
        **given,
    )
    try:
        estimator.fit(
            positional(fold.train_rows),
            fold.target,
            eval_set=[(positional(fold.valid_rows), fold.valid_target)] if fold.valid_rows is not None else None,
            verbose=False,
        )
    except Exception as exc:  # the library's refusal of a parameter or of the data
        raise fit_failed("XGBoost", model, exc) from None
    booster = estimator.get_booster()
    trees = booster.best_iteration + 1 if stopping else booster.num_boosted_rounds()
    return _fitted(booster, classes_of(fold.task, fold.target), list(fold.train_rows.columns), trees)


def _pruning(fold: EstimatorFold, metric: str):
    """An XGBoost training callback reporting the validation metric to a sweep's pruner (True: stop the fit)."""
    import xgboost

    class Pruning(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            scores = next((log[metric] for name, log in evals_log.items() if name != "train"), [])
            return bool(scores) and report_round(fold, epoch, float(scores[-1]), metric)

    return Pruning()


def _gain(booster: Any, n_features: int) -> np.ndarray:
    """Total gain per feature (XGBoost leaves out features no tree split on)."""
    by_name = booster.get_score(importance_type="total_gain")
    return np.array([by_name.get(f"f{i}", 0.0) for i in range(n_features)])


def _fitted(booster: Any, classes: np.ndarray, features: list[str], trees: int) -> Fitted:
    import xgboost

    def predict(b, rows):
        return b.predict(xgboost.DMatrix(positional(rows), enable_categorical=True), iteration_range=(0, trees))

    return Fitted(booster, classes, predict, features, trees, _gain(booster, len(features)))


def save(fitted: Fitted, folder: Path) -> None:
    """XGBoost's UBJSON model (every tree; predictions use the `trees` kept) and gbdt.json, each written by rename."""
    from pipeline import io

    folder.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(folder / FILES[0]) as tmp:
        tmp.write_bytes(bytes(fitted.model.save_raw("ubj")))
    save_sidecar(folder, fitted)


def load(folder: Path, model: DictConfig) -> Fitted:
    """A fold saved by `save`, read by XGBoost's own loader (a data file: no code runs)."""
    import xgboost

    from pipeline.models.gbdt import read_sidecar

    side = read_sidecar(folder)
    booster = xgboost.Booster()
    booster.load_model(bytearray((folder / FILES[0]).read_bytes()))
    return _fitted(booster, np.asarray(side["classes"]), side["features"], side["trees"])
