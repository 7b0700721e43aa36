"""The ensemble stage on member predictions written to disk: candidates, the auto choice, every metric."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.ensemble import ensemble
from pipeline.ensemble.methods import Problem, usable_methods
from pipeline.ensemble.stage import evaluate
from pipeline.errors import PodiumError
from pipeline.metrics import METRICS
from pipeline.predictions import Predictions

pytestmark = pytest.mark.fast  # no training, no servers

rng = np.random.default_rng(11)
N_TRAIN, N_TEST, N_CLASSES = 600, 200, 10


def member(target: np.ndarray, noise: float, n_rows: int | None = None) -> np.ndarray:
    rows = len(target) if n_rows is None else n_rows
    logits = (np.eye(N_CLASSES)[target] * 2 if n_rows is None else 0) + rng.normal(scale=noise, size=(rows, N_CLASSES))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture
def members(project, make_cfg):
    """Three models' predictions (one with two seeds) and a kept sweep trial, on made-up ids."""
    comp = make_cfg().competition
    target = rng.integers(0, N_CLASSES, N_TRAIN)
    ids, test_ids, folds = (
        np.array([f"r{i}" for i in range(N_TRAIN)]),
        np.array([f"t{i}" for i in range(N_TEST)]),
        np.arange(N_TRAIN) % 5,
    )

    def write(folder, noise):
        Predictions(ids, folds, target, member(target, noise), test_ids, member(target, noise, N_TEST)).save(
            project / folder, comp
        )

    write("outputs/animals/models/good", 1.0)
    write("outputs/animals/models/weak", 1.8)
    for seed in (0, 1):
        write(f"outputs/animals/models/seeded/seeds/seed_{seed}", 1.4)
    write("outputs/animals/models/seeded", 1.4)
    write("runs/sweep/trial_7", 1.2)
    return target


def test_auto_blends_every_candidate_and_keeps_the_best_nested_method(project, make_cfg, members):
    cfg = make_cfg(
        "ensemble.members=[good,weak,seeded,runs/sweep/trial_7]",
        "ensemble.seeds=separate",
        "out_dir=outputs/animals/ensemble",
    )
    result = ensemble(cfg)
    assert list(result.member_scores) == ["good", "weak", "seeded/seed_0", "seeded/seed_1", "runs/sweep/trial_7"]
    nested = {m.method: m.nested for m in result.methods}
    assert set(nested) == {"mean", "weighted", "hill_climb", "stack"} and result.cv_score == max(nested.values())
    metrics = json.loads((project / "outputs/animals/ensemble/metrics.json").read_text())
    assert metrics["method"] == result.method and metrics["cv"] == result.cv_score
    assert metrics["sources"]["seeded/seed_1"] == "outputs/animals/models/seeded/seeds/seed_1"
    assert set(metrics["methods"][result.method]) == {"in_sample", "nested"}
    oof = pd.read_parquet(project / "outputs/animals/ensemble/oof.parquet")
    probs = oof[[c for c in oof.columns if c.startswith("prob_")]].to_numpy()
    assert (probs.argmax(1) == members).mean() == pytest.approx(result.cv_score)  # the held-out predictions
    test = pd.read_parquet(project / "outputs/animals/ensemble/test.parquet")
    assert len(test) == N_TEST and np.allclose(test.filter(like="prob_").sum(axis=1), 1, atol=1e-5)


def test_members_predicting_different_rows_are_refused(project, make_cfg, members):
    comp = make_cfg().competition
    other = Predictions(
        np.array([f"x{i}" for i in range(N_TRAIN)]),
        np.arange(N_TRAIN) % 5,
        members,
        member(members, 1.0),
        np.array([f"t{i}" for i in range(N_TEST)]),
        member(members, 1.0, N_TEST),
    )
    other.save(project / "outputs/animals/models/stray", comp)
    with pytest.raises(PodiumError, match="Members good and stray predict different training ids"):
        ensemble(make_cfg("ensemble.members=[good,stray]", "out_dir=outputs/animals/ensemble"))
    with pytest.raises(PodiumError, match="rank_mean replaces predictions by their ranks"):
        ensemble(make_cfg("ensemble=rank_mean", "ensemble.members=[good,weak]", "out_dir=outputs/animals/ensemble"))
    assert not (project / "outputs/animals/ensemble").exists()


TASK_OF = {
    "accuracy": "multiclass",
    "log_loss": "multiclass",
    "roc_auc": "binary",
    "macro_f1": "multiclass",
    "qwk": "multiclass",
    "rmse": "regression",
    "mae": "regression",
    "r2": "regression",
    "rmsle": "regression",
}


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_every_method_serves_every_metric_in_its_direction(metric):
    from omegaconf import OmegaConf

    from pipeline.config.schema import ENSEMBLE_METHODS, EnsembleConfig

    assert set(TASK_OF) == set(METRICS)  # a new metric gets a task here
    task = TASK_OF[metric]
    y = rng.normal(size=400) if task == "regression" else rng.integers(0, 2 if task == "binary" else 4, 400)
    if task == "regression":
        oofs = (y[None] + rng.normal(scale=[[0.3], [0.6], [1.2]], size=(3, 400)))[..., None]
        if metric == "rmsle":  # its values are positive: the same members, in exp space
            y, oofs = np.exp(y), np.exp(oofs)
    else:
        k = 2 if task == "binary" else 4
        oofs = np.stack([(np.eye(k)[y] * 2 + rng.normal(scale=s, size=(400, k))) for s in (0.8, 1.2, 2.0)])
        oofs = np.exp(oofs) / np.exp(oofs).sum(2, keepdims=True)
    problem = Problem(METRICS[metric], task, OmegaConf.structured(EnsembleConfig))
    worst_member = min if METRICS[metric].direction == "maximize" else max
    for method in usable_methods(list(ENSEMBLE_METHODS[1:]), METRICS[metric], task):
        result = evaluate(method, problem, oofs, y, np.arange(400) % 4)
        assert np.isfinite(result.nested) and np.isfinite(result.in_sample), method
        member_scores = [METRICS[metric](y, o[:, 0] if task == "regression" else o) for o in oofs]
        assert not METRICS[metric].better(worst_member(member_scores), result.nested), (
            method,
            result.nested,
            member_scores,
        )
        if task != "regression" and method != "rank_mean":
            assert np.allclose(result.held_out.sum(1), 1), method  # probabilities, renormalised
