"""Stage 3, ensemble: blend the members' out-of-fold predictions, apply the blend to test.

Methods: `mean`, and `greedy` — Caruana et al. (2004) selection with replacement: start from an
empty bag, each round add the member whose addition gives the best blended OOF score (ties go to
a member already in the bag), and keep the best prefix of rounds. The blend is a weighted mean;
weights are how often each member was picked. Each round scores every candidate from a running
sum at once (benchmarks/ensemble_selection.py measures it against a re-blending loop).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from omegaconf import DictConfig

from pipeline import io
from pipeline.errors import PodiumError
from pipeline.metrics import EPS, Metric, get_metric, report_scores, score_predictions
from pipeline.predictions import Predictions, load_predictions

log = logging.getLogger(__name__)


@dataclass
class EnsembleResult:
    method: str
    weights: dict[str, float]
    member_scores: dict[str, float]
    cv_score: float
    out_dir: Path


def candidate_scorer(metric: Metric, target: np.ndarray, oofs: np.ndarray, task: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """A function (running sum, step) -> the score of `(running + oofs[m]) / step` for every member m.

    Log loss, accuracy, RMSE and MAE score every candidate at once from what they need (log loss
    only the true class's column); other metrics are called once per candidate.
    """
    rows = np.arange(oofs.shape[1])
    if metric.name == "log_loss" and task != "regression":
        truth = oofs[:, rows, target.astype(int)]  # (members, rows)
        totals = oofs.sum(axis=2)  # the metric renormalises each row; so does this

        def log_loss(running, step):
            p = (running[rows, target.astype(int)] + truth) / (running.sum(axis=1) + totals)
            return -np.log(np.clip(p, EPS, 1 - EPS)).mean(axis=1)

        return log_loss
    if metric.name == "accuracy" and task != "regression":
        chunk = max(1, int(2e7 // max(1, oofs[0].size)))  # bound the (chunk, rows, classes) temporary

        def accuracy(running, step):
            return np.concatenate([((running + oofs[i:i + chunk]).argmax(axis=2) == target).mean(axis=1)
                                   for i in range(0, len(oofs), chunk)])

        return accuracy
    if metric.name in ("rmse", "mae") and task == "regression":
        values, y = oofs[..., 0], target.astype(float)

        def regression(running, step):
            error = (running[:, 0] + values) / step - y
            return np.sqrt((error**2).mean(axis=1)) if metric.name == "rmse" else np.abs(error).mean(axis=1)

        return regression

    def one_by_one(running, step):
        return np.array([score_predictions(metric, target, (running + oof) / step, task) for oof in oofs])

    return one_by_one


def greedy_weights(oofs: np.ndarray, target: np.ndarray, metric: Metric, rounds: int, task: str = "multiclass") -> tuple[np.ndarray, list[float]]:
    """Caruana selection with replacement over `oofs` (members, rows, outputs).

    Returns the weights of the best prefix and the blended score after each round. The running
    sum is updated in place and every candidate is scored from it (`candidate_scorer`), never by
    re-blending all members from scratch.
    """
    n_members = len(oofs)
    score_all = candidate_scorer(metric, target, oofs, task)
    counts = np.zeros(n_members, dtype=np.int64)
    running = np.zeros_like(oofs[0])
    history: list[float] = []
    best_counts, best_score = counts.copy(), metric.worst
    for step in range(1, rounds + 1):
        scores = score_all(running, step)
        best = scores.max() if metric.direction == "maximize" else scores.min()
        tied = np.flatnonzero(scores == best)
        chosen = next((m for m in tied if counts[m] > 0), tied[0])  # ties: prefer a member already in the bag
        counts[chosen] += 1
        running += oofs[chosen]
        history.append(float(best))
        if metric.better(best, best_score):
            best_score, best_counts = best, counts.copy()
    return best_counts / best_counts.sum(), history


def load_members(cfg: DictConfig) -> dict[str, Predictions]:
    """Every member's predictions, checked to cover the same training and test ids."""
    comp = cfg.competition
    models_dir = io.root(cfg) / cfg.paths.outputs / comp.name / "models"
    names = list(cfg.ensemble.members or comp.models)
    if not names:
        raise PodiumError(
            f"No models to ensemble: set `models:` in conf/competition/{comp.name}.yaml or ensemble.members=[a,b]."
        )
    members = {name: load_predictions(models_dir / name, comp) for name in names}
    first_name, first = next(iter(members.items()))
    for name, member in members.items():
        for what, a, b in (("training", member.oof_ids, first.oof_ids), ("test", member.test_ids, first.test_ids)):
            if not np.array_equal(a, b):
                raise PodiumError(
                    f"Members {first_name} and {name} predict different {what} ids (or folds): they were "
                    f"trained on different prepared data. Retrain both on the same competition config."
                )
        if not np.array_equal(member.folds, first.folds):
            raise PodiumError(f"Members {first_name} and {name} used different folds. Retrain both with the same cv settings.")
    return members


def ensemble(cfg: DictConfig) -> EnsembleResult:
    """Blend the configured members and write the ensemble's predictions and scores to `out_dir`."""
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    members = load_members(cfg)
    names = list(members)
    first = members[names[0]]
    oofs = np.stack([members[n].oof for n in names])
    tests = np.stack([members[n].test for n in names])
    member_scores = {n: score_predictions(metric, first.target, members[n].oof, comp.task) for n in names}

    if cfg.ensemble.method == "greedy":
        weights, history = greedy_weights(oofs, first.target, metric, cfg.ensemble.rounds, comp.task)
    else:
        weights, history = np.full(len(names), 1 / len(names)), []
    oof = np.tensordot(weights, oofs, axes=1)
    test = np.tensordot(weights, tests, axes=1)
    cv_score = score_predictions(metric, first.target, oof, comp.task)
    reported = report_scores(comp, first.target, oof)

    out = io.out_dir(cfg)
    from pipeline.tracking import Tracker

    tracker = Tracker(cfg)
    with tracker.run("ensemble", params=True, stage="ensemble", model="ensemble"):
        written = Predictions(first.oof_ids, first.folds, first.target, oof, first.test_ids, test).save(out, comp)
        metrics = {"method": cfg.ensemble.method, "metric": metric.name, "cv": cv_score, "report": reported,
                   "weights": {n: float(w) for n, w in zip(names, weights)},
                   "members": member_scores, "rounds": history}
        io.write_config(out / "config.yaml", cfg)
        io.write_json(out / "metrics.json", metrics)
        tracker.log_metrics({f"cv_{metric.name}": cv_score, **{f"cv_{k}": v for k, v in reported.items()},
                             **{f"weight_{n}": float(w) for n, w in zip(names, weights)},
                             **{f"member_cv_{n}": s for n, s in member_scores.items()}})
        tracker.log_artifacts([*written, out / "config.yaml", out / "metrics.json"])
    return EnsembleResult(cfg.ensemble.method, metrics["weights"], member_scores, cv_score, out)
