"""Competition metrics. The classic ones are computed with numpy: hill climbing and the weighted blend's
optimiser call the metric thousands of times, and scikit-learn's input validation costs more than the
metric itself on a few thousand rows (each is checked against scikit-learn in tests/test_metrics.py).
Newer ones wrap scikit-learn's implementations (r2, rmsle).

Conventions: for classification, `y_true` holds class indices (N,) and `y_pred` class
probabilities (N, C) (binary tasks too: C = 2). For regression both are float arrays (N,).
Each metric is checked against scikit-learn in tests/test_metrics.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "maximize" or "minimize"
    task: str  # "classification", "regression" or "any"
    fn: Callable[[np.ndarray, np.ndarray], float]
    order_only: bool = False  # reads only the order of predictions (rank-based blends suit it)

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(self.fn(np.asarray(y_true), np.asarray(y_pred)))

    def better(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than score `b`."""
        return a > b if self.direction == "maximize" else a < b

    @property
    def worst(self) -> float:
        return -np.inf if self.direction == "maximize" else np.inf


def _labels(y_pred: np.ndarray) -> np.ndarray:
    return y_pred.argmax(axis=1) if y_pred.ndim == 2 else np.rint(y_pred).astype(int)


def accuracy(y_true, y_pred):
    return np.mean(_labels(y_pred) == y_true)


def log_loss(y_true, y_pred):
    p = np.clip(y_pred / y_pred.sum(axis=1, keepdims=True), EPS, 1 - EPS)
    return -np.mean(np.log(p[np.arange(len(y_true)), y_true.astype(int)]))


def _binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    # average rank over runs of equal scores
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def roc_auc(y_true, y_pred):
    """Binary: AUC of the positive class. Multi-class: macro one-vs-rest AUC."""
    y_true = y_true.astype(int)
    if y_pred.ndim == 1:
        return _binary_auc(y_true, y_pred)
    if y_pred.shape[1] == 2:
        return _binary_auc(y_true, y_pred[:, 1])
    return np.mean([_binary_auc((y_true == c).astype(int), y_pred[:, c]) for c in range(y_pred.shape[1])])


def macro_f1(y_true, y_pred):
    pred = _labels(y_pred)
    classes = np.union1d(y_true, pred)
    scores = []
    for c in classes:
        tp = np.sum((pred == c) & (y_true == c))
        fp = np.sum((pred == c) & (y_true != c))
        fn = np.sum((pred != c) & (y_true == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return np.mean(scores)


def quadratic_weighted_kappa(y_true, y_pred):
    """Cohen's kappa with quadratic weights over the ordered classes (ordinal targets)."""
    pred = _labels(y_pred)
    y_true = y_true.astype(int)
    n = int(max(y_true.max(), pred.max())) + 1
    observed = np.zeros((n, n))
    np.add.at(observed, (y_true, pred), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    idx = np.arange(n)
    weights = (idx[:, None] - idx[None, :]) ** 2 / max((n - 1) ** 2, 1)
    denominator = (weights * expected).sum()
    return 1.0 - (weights * observed).sum() / denominator if denominator else 1.0


def rmse(y_true, y_pred):
    return np.sqrt(np.mean((y_true.astype(float) - y_pred.reshape(y_true.shape)) ** 2))


def mae(y_true, y_pred):
    return np.mean(np.abs(y_true.astype(float) - y_pred.reshape(y_true.shape)))


def r2(y_true, y_pred):
    """Coefficient of determination (1 is perfect, 0 is the mean's score)."""
    from sklearn.metrics import r2_score

    return r2_score(y_true.astype(float), y_pred.reshape(y_true.shape))


def rmsle(y_true, y_pred):
    """Root mean squared log error. Predictions below 0 count as 0 (log1p is undefined below -1, and Kaggle
    refuses a negative value in an RMSLE submission): a model of log1p(y) is better served by
    competition.target.transform: log1p and rmse, which fits what this metric scores."""
    from sklearn.metrics import root_mean_squared_log_error

    return root_mean_squared_log_error(y_true.astype(float), np.maximum(y_pred.reshape(y_true.shape), 0.0))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "maximize", "classification", accuracy),
        Metric("log_loss", "minimize", "classification", log_loss),
        Metric("roc_auc", "maximize", "classification", roc_auc, order_only=True),
        Metric("macro_f1", "maximize", "classification", macro_f1),
        Metric("qwk", "maximize", "any", quadratic_weighted_kappa),
        Metric("rmse", "minimize", "regression", rmse),
        Metric("mae", "minimize", "regression", mae),
        Metric("r2", "maximize", "regression", r2),
        Metric("rmsle", "minimize", "regression", rmsle),
    )
}


def score_predictions(metric: Metric, y_true: np.ndarray, pred: np.ndarray, task: str) -> float:
    """`metric` on predictions laid out as (rows, outputs), the form of pipeline/predictions.py."""
    return metric(y_true, pred[:, 0] if task == "regression" else pred)


def report_scores(comp, y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The competition's `report_metrics` (reported beside its metric) on the same predictions."""
    return {name: score_predictions(METRICS[name], y_true, pred, comp.task) for name in comp.report_metrics}


def get_metric(name: str) -> Metric:
    """The registered metric `name`; a PodiumError lists the valid names otherwise."""
    from pipeline.errors import PodiumError

    if name not in METRICS:
        raise PodiumError(f"Unknown metric {name!r}; valid metrics are {', '.join(sorted(METRICS))}.")
    return METRICS[name]
