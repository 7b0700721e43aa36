"""Hill climbing (Caruana et al., 2004): ensemble selection with replacement, vectorised.

Start from a bag (empty, the best members, or random ones), then each round add the member
whose addition gives the best blended out-of-fold score (ties go to a member already in the
bag) and keep the best prefix of rounds. Each round scores every candidate at once from the
running sum of the bag (benchmarks/ensemble_selection.py measures it against a re-blending loop).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipeline.metrics import EPS, Metric, score_predictions


def candidate_scorer(
    metric: Metric, target: np.ndarray, oofs: np.ndarray, task: str
) -> Callable[[np.ndarray, int], np.ndarray]:
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
            return np.concatenate(
                [
                    ((running + oofs[i : i + chunk]).argmax(axis=2) == target).mean(axis=1)
                    for i in range(0, len(oofs), chunk)
                ]
            )

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


def initial_bag(
    oofs: np.ndarray, target: np.ndarray, metric: Metric, task: str, init: str, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Pick counts to start from: none, the `size` best members alone, or `size` members at random."""
    counts = np.zeros(len(oofs), dtype=np.int64)
    size = min(size, len(oofs))
    if init == "best" and size:
        scores = np.array([score_predictions(metric, target, oof, task) for oof in oofs])
        order = np.argsort(-scores if metric.direction == "maximize" else scores, kind="stable")
        counts[order[:size]] = 1
    elif init == "random" and size:
        counts[rng.choice(len(oofs), size=size, replace=False)] = 1
    return counts


def hill_climb_weights(
    oofs: np.ndarray,
    target: np.ndarray,
    metric: Metric,
    rounds: int,
    task: str = "multiclass",
    init: str = "empty",
    init_size: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, list[float]]:
    """Caruana selection with replacement over `oofs` (members, rows, outputs).

    Returns the weights of the best prefix (the initial bag counts as round 0) and the blended
    score after each round. The running sum is updated in place and every candidate is scored
    from it (`candidate_scorer`), never by re-blending all members from scratch.
    """
    score_all = candidate_scorer(metric, target, oofs, task)
    counts = initial_bag(oofs, target, metric, task, init, init_size, np.random.default_rng(seed))
    running = np.tensordot(counts.astype(float), oofs, axes=1)
    history: list[float] = []
    best_counts, best_score = counts.copy(), metric.worst
    if counts.any():
        best_score = score_predictions(metric, target, running / counts.sum(), task)
    for _ in range(rounds):
        step = counts.sum() + 1
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
