"""Blending methods: each learns from members' out-of-fold predictions and applies to any rows.

A method is fit on `oofs` (members, rows, outputs) with the target, then blends predictions of
the same members laid out the same way (the held-out fold, or the test set). Classification
outputs stay class probabilities (rows renormalised); regression outputs stay values.

  mean        plain average
  rank_mean   average of per-column ranks scaled to [0, 1] (metrics that only need order)
  weighted    non-negative weights summing to one, found by a scipy optimiser on the metric
  hill_climb  Caruana selection with replacement (selection.py)
  stack       a scikit-learn meta-model on the members' predictions (log-odds for classification)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.config.schema import ENSEMBLE_METHODS
from pipeline.ensemble.selection import hill_climb_weights
from pipeline.errors import PodiumError
from pipeline.metrics import EPS, Metric, score_predictions

METHODS = ENSEMBLE_METHODS[1:]  # less auto


@dataclass
class Problem:
    """What every method needs besides the predictions: how to score, and its settings."""

    metric: Metric
    task: str
    settings: DictConfig  # the `ensemble` config section


def renormalise(pred: np.ndarray, task: str) -> np.ndarray:
    return pred if task == "regression" else pred / pred.sum(axis=1, keepdims=True)


class Blend:
    """Base: a weighted mean of the members. Subclasses set `weights` in `fit` or override `apply`."""

    name = "mean"

    def __init__(self, problem: Problem):
        self.problem = problem
        self.weights: np.ndarray | None = None

    def fit(self, oofs: np.ndarray, target: np.ndarray) -> Blend:
        self.weights = np.full(len(oofs), 1 / len(oofs))
        return self

    def apply(self, preds: np.ndarray) -> np.ndarray:
        return renormalise(np.tensordot(self.weights, preds, axes=1), self.problem.task)

    def describe(self, names: list[str]) -> dict[str, float]:
        """Each member's share of the blend (for the report and MLflow)."""
        return {n: float(w) for n, w in zip(names, self.weights)}


class RankMean(Blend):
    """Mean of per-column ranks. Ranks are taken within the rows blended, so test ranks are the test set's own."""

    name = "rank_mean"

    def apply(self, preds: np.ndarray) -> np.ndarray:
        ranks = preds.argsort(axis=1, kind="stable").argsort(axis=1, kind="stable") / max(preds.shape[1] - 1, 1)
        blended = ranks.mean(axis=0)
        if self.problem.task == "binary":  # keep the columns complementary: P(negative) = 1 - P(positive)
            blended[:, 0] = 1 - blended[:, 1]
        return blended  # multi-class: per-column order is all an order-only metric reads


class Weighted(Blend):
    """Weights optimised on the metric by scipy, from the equal-weight start."""

    name = "weighted"

    def fit(self, oofs, target):
        from scipy.optimize import minimize

        metric, task = self.problem.metric, self.problem.task
        sign = -1.0 if metric.direction == "maximize" else 1.0
        n = len(oofs)
        solver = self.problem.settings.weighted.solver

        def loss(w):
            w = np.clip(w, 0, None)
            total = w.sum()
            if total <= EPS:
                return sign * metric.worst if np.isfinite(metric.worst) else 1e12
            return sign * score_predictions(metric, target, np.tensordot(w / total, oofs, axes=1), task)

        start = np.full(n, 1 / n)
        if solver == "SLSQP":  # weights directly, constrained to sum to one (smooth metrics: log loss, RMSE)
            found = minimize(
                loss,
                start,
                method="SLSQP",
                bounds=[(0, 1)] * n,
                constraints=({"type": "eq", "fun": lambda w: w.sum() - 1},),
            )
        else:  # derivative-free on unnormalised weights: copes with stepwise metrics (accuracy, AUC)
            tolerances = {"xtol": 1e-4, "ftol": 1e-9} if solver == "Powell" else {"xatol": 1e-4, "fatol": 1e-9}
            found = minimize(loss, start, method=solver, bounds=[(0, 1)] * n, options={**tolerances, "maxfev": 200 * n})
        w = np.clip(found.x, 0, None)
        # Never worse on the rows it was fit on than where it started.
        self.weights = w / w.sum() if w.sum() > EPS and loss(w) <= loss(start) else start
        return self


class HillClimb(Blend):
    name = "hill_climb"

    def fit(self, oofs, target):
        s = self.problem.settings.hill_climb
        self.weights, self.history = hill_climb_weights(
            oofs, target, self.problem.metric, s.rounds, self.problem.task, s.init, s.init_size, s.seed
        )
        return self


class Stack(Blend):
    """A meta-model on the members' predictions: standardised, then logistic regression (classification)
    or ridge (regression) by default; any scikit-learn estimator by `ensemble.stack.estimator._target_`.

    Its out-of-fold predictions come from cross-fitting over the folds (the nested estimate), so the
    stack is never scored on rows it was fit on."""

    name = "stack"

    def features(self, preds: np.ndarray) -> np.ndarray:
        if self.problem.task == "regression":
            cols = preds
        else:
            p = np.clip(preds, EPS, 1 - EPS)
            # Log-odds: a linear meta-model on them is a weighted geometric blend, the natural scale for probabilities.
            cols = np.log(p[..., 1:] / p[..., :1]) if self.problem.task == "binary" else np.log(p)
        return cols.transpose(1, 0, 2).reshape(preds.shape[1], -1)  # (rows, members x outputs)

    def fit(self, oofs, target):
        self.model = build_estimator(self.problem)
        self.model.fit(self.features(oofs), target)
        return self

    def apply(self, preds):
        x = self.features(preds)
        if self.problem.task == "regression":
            return self.model.predict(x).reshape(-1, 1)
        proba = np.zeros((len(x), preds.shape[2]))
        proba[:, self.model.classes_.astype(int)] = self.model.predict_proba(x)  # a fold may miss a rare class
        return renormalise(np.clip(proba, EPS, None), self.problem.task)

    def describe(self, names):
        """Each member's share of the meta-model's absolute coefficients (when it has any)."""
        final = self.model[-1] if hasattr(self.model, "steps") else self.model  # a scikit-learn Pipeline's last step
        coef = getattr(final, "coef_", None)
        if coef is None:
            return {n: float("nan") for n in names}
        per_member = np.abs(np.atleast_2d(coef)).sum(axis=0).reshape(len(names), -1).sum(axis=1)
        return {n: float(v) for n, v in zip(names, per_member / max(per_member.sum(), EPS))}


def build_estimator(problem: Problem):
    """The stack's meta-model: the configured `_target_`, or the task's default."""
    from hydra.utils import instantiate

    spec = problem.settings.stack.estimator
    if spec is None:
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        # Standardised features: log-probabilities run to -34 where a member is sure, and unscaled they
        # let the meta-model overfit (animals: nested accuracy 0.979 against 0.988 scaled) and fit 7x slower.
        C = problem.settings.stack.C
        final = Ridge(alpha=1.0 / C) if problem.task == "regression" else LogisticRegression(C=C, max_iter=1000)
        return make_pipeline(StandardScaler(), final)
    try:
        return instantiate(OmegaConf.to_container(spec))
    except Exception as exc:  # a bad class path or argument: the user's config
        cause = exc.__cause__ or exc
        raise PodiumError(
            f"Cannot build ensemble.stack.estimator ({spec.get('_target_')}): {type(cause).__name__}: {cause}. "
            f"Give a scikit-learn estimator's class path and valid arguments in conf/ensemble/ or on the command line."
        ) from None


BLENDS: dict[str, type[Blend]] = {cls.name: cls for cls in (Blend, RankMean, Weighted, HillClimb, Stack)}


def make_blend(name: str, problem: Problem) -> Blend:
    return BLENDS[name](problem)


def usable_methods(names: list[str], metric: Metric, task: str) -> list[str]:
    """`names` less those that cannot serve this metric (rank_mean needs an order-only metric)."""
    return [n for n in names if n != "rank_mean" or metric.order_only]


def check_method(name: str, metric: Metric) -> None:
    """Refuse a method that cannot serve the competition, before any work."""
    if name == "rank_mean" and not metric.order_only:
        raise PodiumError(
            f"ensemble.method=rank_mean replaces predictions by their ranks, which only suits metrics that read order "
            f"(roc_auc); this competition's metric is {metric.name}. Choose mean, weighted, hill_climb, stack or auto."
        )
