"""Every blending method on constructed data with a known best answer, and the honest (nested) score."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.config.schema import EnsembleConfig
from pipeline.ensemble.methods import Problem, make_blend
from pipeline.ensemble.stage import evaluate
from pipeline.errors import PodiumError
from pipeline.metrics import METRICS, score_predictions

pytestmark = pytest.mark.fast  # no training, no servers

rng = np.random.default_rng(7)


def problem(metric: str, task: str, **settings) -> Problem:
    cfg = OmegaConf.merge(OmegaConf.structured(EnsembleConfig), settings)
    return Problem(METRICS[metric], task, cfg)


def binary(score: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-score))
    return np.stack([1 - p, p], axis=1)


def softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_mean_averages_and_keeps_probabilities():
    y = rng.integers(0, 3, 500)
    oofs = np.stack([softmax(rng.normal(size=(500, 3))) for _ in range(3)])
    blended = make_blend("mean", problem("log_loss", "multiclass")).fit(oofs, y).apply(oofs)
    assert blended == pytest.approx(oofs.mean(axis=0)) and np.allclose(blended.sum(1), 1)


def test_rank_mean_ignores_each_members_scale():
    # b is a monotone copy of a squeezed into a narrow range: a plain mean would all but ignore it,
    # while in the rank blend it counts fully, exactly as a does.
    y = rng.integers(0, 2, 1000)
    score = y + rng.normal(scale=1.2, size=1000)
    a = binary(score)
    b = binary(0.05 * score + 3)
    c = binary(y + rng.normal(scale=1.2, size=1000))
    oofs = np.stack([a, b, c])
    blend = make_blend("rank_mean", problem("roc_auc", "binary")).fit(oofs, y)
    blended = blend.apply(oofs)
    assert np.allclose(blended.sum(1), 1) and blended.min() >= 0 and blended.max() <= 1
    ranks = lambda p: p[:, 1].argsort().argsort()  # noqa: E731
    expected = (2 * ranks(a) + ranks(c)) / 3  # a and b contribute identical ranks
    # (rows with equal rank sums may differ in the last bit once scaled: a few split ties, hence abs=1e-4)
    assert METRICS["roc_auc"](y, blended) == pytest.approx(METRICS["roc_auc"](y, expected), abs=1e-4)
    mean = make_blend("mean", problem("roc_auc", "binary")).fit(oofs, y).apply(oofs)
    assert abs(METRICS["roc_auc"](y, mean) - METRICS["roc_auc"](y, expected)) > 1e-3  # the scales matter there


@pytest.mark.parametrize("solver", ["Powell", "Nelder-Mead", "SLSQP"])
def test_weighted_recovers_the_weights_the_target_was_built_from(solver):
    a, b = rng.normal(size=3000), rng.normal(size=3000)
    y = 0.3 * a + 0.7 * b
    blend = make_blend("weighted", problem("rmse", "regression", weighted={"solver": solver}))
    blend.fit(np.stack([a, b])[..., None], y)
    assert blend.weights == pytest.approx([0.3, 0.7], abs=0.01) and blend.weights.sum() == pytest.approx(1)


def test_stack_learns_what_no_convex_blend_can():
    # b is confidently wrong: a meta-model turns it round (negative coefficient); weighted means cannot.
    y = rng.integers(0, 2, 2000)
    a = binary(2 * (y - 0.5) + rng.normal(scale=2.0, size=2000))
    b = binary(-4 * (y - 0.5) + rng.normal(scale=1.0, size=2000))
    oofs, folds = np.stack([a, b]), np.arange(2000) % 4
    stack = evaluate("stack", problem("roc_auc", "binary"), oofs, y, folds)
    weighted = evaluate("weighted", problem("roc_auc", "binary"), oofs, y, folds)
    assert stack.nested > 0.95 > weighted.nested
    assert stack.blend.model[-1].coef_[0][1] < 0  # the default: StandardScaler, then LogisticRegression


def test_stack_takes_any_scikit_learn_estimator_and_names_a_bad_one():
    y = rng.integers(0, 3, 600)
    oofs = np.stack([softmax(np.eye(3)[y] * 2 + rng.normal(size=(600, 3))) for _ in range(2)])
    tree = {"estimator": {"_target_": "sklearn.tree.DecisionTreeClassifier", "max_depth": 3, "random_state": 0}}
    blend = make_blend("stack", problem("log_loss", "multiclass", stack=tree)).fit(oofs, y)
    assert type(blend.model).__name__ == "DecisionTreeClassifier"
    assert np.allclose(blend.apply(oofs).sum(1), 1)
    bad = {"estimator": {"_target_": "sklearn.linear_model.NoSuchModel"}}
    with pytest.raises(PodiumError, match=r"ensemble\.stack\.estimator \(sklearn\.linear_model\.NoSuchModel\)"):
        make_blend("stack", problem("log_loss", "multiclass", stack=bad)).fit(oofs, y)


@pytest.mark.parametrize("method", ["weighted", "hill_climb", "stack"])
def test_lower_is_better_metrics_are_minimised(method):
    y = rng.normal(size=2000)
    near, far = y + rng.normal(scale=0.2, size=2000), y + rng.normal(scale=2.0, size=2000) + 1
    oofs = np.stack([far, near])[..., None]
    result = evaluate(method, problem("rmse", "regression"), oofs, y, np.arange(2000) % 5)
    assert result.nested < score_predictions(METRICS["rmse"], y, oofs[0], "regression")
    assert result.nested <= score_predictions(METRICS["rmse"], y, oofs[1], "regression") + 0.01


@pytest.mark.parametrize("method", ["weighted", "hill_climb", "stack"])
def test_the_nested_estimate_is_never_above_the_in_sample_one_on_data_built_to_overfit(method):
    # 40 members of pure noise and one weak signal on few rows: anything fit to these rows flatters itself.
    y = rng.integers(0, 2, 300)
    members = [binary(0.3 * (y - 0.5) + rng.normal(size=300))] + [binary(rng.normal(size=300)) for _ in range(40)]
    result = evaluate(method, problem("roc_auc", "binary"), np.stack(members), y, np.arange(300) % 5)
    assert result.nested < result.in_sample


def test_mean_has_nothing_to_overfit():
    y = rng.integers(0, 3, 400)
    oofs = np.stack([softmax(rng.normal(size=(400, 3))) for _ in range(5)])
    result = evaluate("mean", problem("accuracy", "multiclass"), oofs, y, np.arange(400) % 4)
    assert result.nested == result.in_sample
    assert np.allclose(result.held_out, oofs.mean(0))
