"""LightGBM (`family: lightgbm`): gradient-boosted trees with native categorical splits.

Each fold fits `lightgbm.LGBMRegressor` / `LGBMClassifier` on the fold's typed feature table, stops
early on its validation rows (pipeline/models/gbdt.py picks the metric) and is saved as LightGBM's
own text model (`model.txt`: trees and the categories of each categorical column), loaded by
`lightgbm.Booster`. Deterministic for a seed: `deterministic` and row-wise histograms. It trains on
the CPU under every trainer preset: its OpenCL GPU learner (`params: {device_type: gpu}`, where
the build and the machine have OpenCL) grows other trees than the CPU's, so it is asked for by name.
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

FILES = ("model.txt", "gbdt.json")  # what a fitted fold keeps (pipeline/inference/fitted.py copies them)
RESERVED = (
    "random_state",
    "seed",
    "n_jobs",
    "num_threads",
    "n_estimators",
    "learning_rate",
    "metric",
)


def fit(model: DictConfig, fold: EstimatorFold) -> Fitted:
    """The fold's booster, stopped early on its validation rows when `model.early_stopping_rounds` is set."""
    import lightgbm

    check_classes(fold, model)
    given = params(model, RESERVED, f"conf/model/{model.name}.yaml")
    kind = lightgbm.LGBMRegressor if fold.task == "regression" else lightgbm.LGBMClassifier
    estimator = kind(
        n_estimators=model.n_estimators,
        learning_rate=model.learning_rate,
        random_state=fold.seed,
        n_jobs=fold.threads,
        deterministic=True,
        force_row_wise=True,  # with deterministic: the same trees for a seed, whatever the thread count
        verbosity=-1,
        **given,
    )
    metric = native_metric("lightgbm", fold.metric, fold.task)
    callbacks = [_pruning(fold, metric)] if fold.on_iteration is not None else []
    if model.early_stopping_rounds and fold.valid_rows is not None:
        callbacks.append(lightgbm.early_stopping(model.early_stopping_rounds, first_metric_only=True, verbose=False))
    try:
        estimator.fit(
            positional(fold.train_rows),
            fold.target,
            eval_X=(positional(fold.valid_rows),) if fold.valid_rows is not None else None,
            eval_y=(fold.valid_target,) if fold.valid_rows is not None else None,
            eval_metric=metric,
            callbacks=callbacks,
        )
    except Exception as exc:  # the library's refusal of a parameter or of the data
        raise fit_failed("LightGBM", model, exc) from None
    booster = estimator.booster_
    trees = booster.best_iteration or booster.current_iteration()
    return _fitted(
        booster,
        classes_of(fold.task, fold.target),
        list(fold.train_rows.columns),
        trees,
        booster.feature_importance("gain", iteration=trees),
    )


def _pruning(fold: EstimatorFold, metric: str):
    """A LightGBM callback reporting the validation metric to a sweep's pruner, stopping the fit when pruned."""
    import lightgbm

    def callback(env) -> None:
        value = next(r[2] for r in env.evaluation_result_list if r[0] != "training")
        if report_round(fold, env.iteration, value, metric):
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    return callback


def _fitted(booster: Any, classes: np.ndarray, features: list[str], trees: int, gain: np.ndarray) -> Fitted:
    return Fitted(
        booster,
        classes,
        lambda b, rows: b.predict(positional(rows), num_iteration=trees),
        features,
        trees,
        np.asarray(gain, dtype=np.float64),
    )


def save(fitted: Fitted, folder: Path) -> None:
    """LightGBM's text model (the trees kept by early stopping) and gbdt.json, each written by rename."""
    from pipeline import io

    folder.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(folder / FILES[0]) as tmp:
        fitted.model.save_model(str(tmp), num_iteration=fitted.trees)
    save_sidecar(folder, fitted)


def load(folder: Path, model: DictConfig) -> Fitted:
    """A fold saved by `save`, read by LightGBM's own loader (a text file: no code runs)."""
    import lightgbm

    from pipeline.models.gbdt import read_sidecar

    side = read_sidecar(folder)
    booster = lightgbm.Booster(model_file=str(folder / FILES[0]))
    return _fitted(booster, np.asarray(side["classes"]), side["features"], side["trees"], np.asarray(side["gain"]))
