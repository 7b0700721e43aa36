"""What the gradient-boosted-tree families (LightGBM, XGBoost, CatBoost) share.

Each fold fits the library's scikit-learn estimator on the fold's typed feature table
(pipeline/data/tabular.py), stops early on the fold's validation rows with the competition's
metric where the library has it (its closest native metric otherwise, `NATIVE_METRICS`), and is
saved in the library's own model format beside `gbdt.json` (the classes it saw, the trees kept,
each feature's gain), so `podium predict` loads it without pickle.

Columns reach the libraries by position (`f0`, `f1`, ...): LightGBM and XGBoost refuse names
holding JSON or bracket characters that a CSV header may well hold; `gbdt.json` keeps the names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline import io
from pipeline.errors import PodiumError, first_line
from pipeline.models import EstimatorFold

SIDE_CAR = "gbdt.json"
REPORT_EVERY = 25  # boosting rounds between a sweep's pruning reports (each is a write to the study's storage)
# the libraries' metrics that grow as the fit improves; the others (losses, errors) shrink
MAXIMIZED = {"auc", "auc_mu", "AUC", "Accuracy", "R2", "TotalF1:average=Macro"}

# competition metric -> the closest metric each library computes natively, per task kind
# (r2 ranks models as rmse does on fixed rows; macro_f1 and qwk have no native equivalent in
# every library: the log loss or rmse their probabilities or values are fitted for)
NATIVE_METRICS: dict[str, dict[str, dict[str, str]]] = {
    "lightgbm": {
        "regression": {"rmse": "rmse", "mae": "l1", "r2": "rmse", "rmsle": "rmse", "qwk": "rmse"},
        "binary": {"log_loss": "binary_logloss", "roc_auc": "auc", "accuracy": "binary_error"},
        "multiclass": {"log_loss": "multi_logloss", "roc_auc": "auc_mu", "accuracy": "multi_error"},
    },
    "xgboost": {
        "regression": {"rmse": "rmse", "mae": "mae", "r2": "rmse", "rmsle": "rmsle", "qwk": "rmse"},
        "binary": {"log_loss": "logloss", "roc_auc": "auc", "accuracy": "error"},
        "multiclass": {"log_loss": "mlogloss", "roc_auc": "auc", "accuracy": "merror"},
    },
    "catboost": {
        "regression": {"rmse": "RMSE", "mae": "MAE", "r2": "R2", "rmsle": "MSLE", "qwk": "RMSE"},
        "binary": {
            "log_loss": "Logloss",
            "roc_auc": "AUC",
            "accuracy": "Accuracy",
            "macro_f1": "TotalF1:average=Macro",
        },
        "multiclass": {"log_loss": "MultiClass", "accuracy": "Accuracy", "macro_f1": "TotalF1:average=Macro"},
    },
}
FALLBACK = {  # the loss each library fits, where the table has no closer metric
    "lightgbm": {"regression": "rmse", "binary": "binary_logloss", "multiclass": "multi_logloss"},
    "xgboost": {"regression": "rmse", "binary": "logloss", "multiclass": "mlogloss"},
    "catboost": {"regression": "RMSE", "binary": "Logloss", "multiclass": "MultiClass"},
}


def native_metric(library: str, metric: str, task: str) -> str:
    """The library's early-stopping metric for the competition's `metric` on a `task`."""
    return NATIVE_METRICS[library][task].get(metric, FALLBACK[library][task])


def pruning_value(value: float, native: str, direction: str) -> float:
    """A round's validation `value` of the library's `native` metric, signed so that it improves in the study's
    `direction` (the competition metric's): the pruner compares trials' values at the same round."""
    return value if (native in MAXIMIZED) == (direction == "maximize") else -value


def report_round(fold, iteration: int, value: float, native: str) -> bool:
    """Report round `iteration` to the sweep every REPORT_EVERY rounds; whether the pruner stops the fit."""
    if fold.on_iteration is None or (iteration + 1) % REPORT_EVERY:
        return False
    from pipeline.metrics import get_metric

    return fold.on_iteration(iteration, pruning_value(value, native, get_metric(fold.metric).direction))


def positional(table: pd.DataFrame) -> pd.DataFrame:
    """The feature table with columns named f0, f1, ... (the names stay in gbdt.json)."""
    return table.set_axis([f"f{i}" for i in range(table.shape[1])], axis=1)


@dataclass
class Fitted:
    """A fitted booster read like a scikit-learn estimator: `predict`, `predict_proba` and `classes_`."""

    model: Any  # the library's fitted model
    classes_: np.ndarray  # class codes seen in the fold's training rows, in the model's column order
    predict_rows: Any  # (model, rows: a typed table) -> the model's output: values, or probabilities
    features: list[str]  # the feature names, in column order
    trees: int  # boosting rounds kept (early stopping's best)
    gain: np.ndarray  # each feature's total gain

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.predict_rows(self.model, rows), dtype=np.float64).reshape(len(rows))

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        out = np.asarray(self.predict_rows(self.model, rows), dtype=np.float64)
        return np.stack([1 - out, out], axis=1) if out.ndim == 1 else out


def params(model: DictConfig, reserved: tuple[str, ...], where: str) -> dict[str, Any]:
    """The model's `params:` for the library, refusing the keys Podium sets itself."""
    given = OmegaConf.to_container(model.params, resolve=True) if model.params else {}
    clash = sorted(set(given) & set(reserved))
    if clash:
        raise PodiumError(
            f"Invalid configuration: model.params sets {clash}, which Podium sets itself (the seed and threads from "
            f"the fold and data.num_threads, the device from the trainer, the early-stopping metric from the "
            f"competition, n_estimators and learning_rate from the model's own keys). Remove them from {where}."
        )
    return given


def fit_failed(library: str, model: DictConfig, exc: Exception) -> PodiumError:
    """The library's refusal of a fit, as a PodiumError naming the model's config."""
    return PodiumError(
        f"{library} failed to fit model {model.name}: {type(exc).__name__}: {first_line(exc)}. Check model.params "
        f"in conf/model/{model.name}.yaml against the {library} documentation, and the fold's rows."
    )


def check_classes(fold: EstimatorFold, model: DictConfig) -> None:
    """Refuse a multi-class fold whose training rows lack a class: the libraries would fit fewer classes than the
    competition's and fail, or shift the class columns, inside their own code."""
    if fold.task != "multiclass" or not fold.n_classes:
        return
    absent = sorted(set(range(fold.n_classes)) - set(np.unique(fold.target).astype(int).tolist()))
    if absent:
        raise PodiumError(
            f"Model {model.name}: a fold's training rows hold no row of class(es) {absent} (class indices in "
            f"competition.classes), and a boosted model of {model.family} must see every class to predict it. Use "
            f"fewer folds (competition.cv.n_splits) or a stratified cv.scheme, or drop the class."
        )


def save_sidecar(folder: Path, fitted: Fitted) -> None:
    """gbdt.json: the classes the fold saw, the trees kept and each feature's gain (written by rename)."""
    record = {
        "classes": [int(c) for c in fitted.classes_],
        "trees": fitted.trees,
        "features": fitted.features,
        "gain": [float(g) for g in fitted.gain],
    }
    io.write_json(folder / SIDE_CAR, record)


def read_sidecar(folder: Path) -> dict[str, Any]:
    """A fitted fold's gbdt.json (see `save_sidecar`)."""
    return json.loads((folder / SIDE_CAR).read_text())


def classes_of(task: str, target: np.ndarray) -> np.ndarray:
    """The class codes a classifier fitted on `target` orders its columns by (none for regression)."""
    return np.unique(target.astype(np.int64)) if task != "regression" else np.empty(0, dtype=np.int64)


def mean_gain(fitted: Path) -> pd.Series | None:
    """Each feature's gain, averaged over every seed's and fold's gbdt.json under `fitted` (None: no such files)."""
    found = sorted(fitted.glob("seed_*/fold_*/" + SIDE_CAR))
    if not found:
        return None
    gains = [pd.Series(r["gain"], index=r["features"]) for r in map(lambda p: json.loads(p.read_text()), found)]
    return pd.concat(gains, axis=1).mean(axis=1)
