"""Hill climbing (Caruana selection) finds the right blend on data built to have one."""

import numpy as np
import pytest

from pipeline.ensemble import hill_climb_weights
from pipeline.metrics import METRICS

pytestmark = pytest.mark.fast  # no training, no servers


@pytest.fixture
def rng():
    """Each test's own generator: its data does not depend on which tests ran before it."""
    return np.random.default_rng(0)


def noisy(rng, target, noise, n_classes=3):
    logits = np.eye(n_classes)[target] * 2 + rng.normal(scale=noise, size=(len(target), n_classes))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_hill_climb_prefers_the_good_member_and_ignores_the_useless_one(rng):
    y = rng.integers(0, 3, 3000)
    good, weaker, useless = noisy(rng, y, 1.0), noisy(rng, y, 1.6), rng.dirichlet(np.ones(3), 3000)
    weights, history = hill_climb_weights(np.stack([good, weaker, useless]), y, METRICS["log_loss"], rounds=25)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] > weights[1] and weights[2] == 0
    blend = np.tensordot(weights, np.stack([good, weaker, useless]), axes=1)
    assert METRICS["log_loss"](y, blend) == pytest.approx(min(history))
    assert min(history) <= METRICS["log_loss"](y, good)  # never worse than the best member


def test_hill_climb_finds_the_known_best_pair(rng):
    # Two members with independent errors on complementary halves: the 50/50 blend is right everywhere.
    y = rng.integers(0, 2, 2000)
    a, b = np.eye(2)[y] * 0.9 + 0.05, np.eye(2)[y] * 0.9 + 0.05
    half = np.arange(2000) < 1000
    a[half] = a[half][:, ::-1] * 0.6 + 0.2  # a is wrong, but unsure, on the first half
    b[~half] = b[~half][:, ::-1] * 0.6 + 0.2  # b likewise on the second
    weights, _ = hill_climb_weights(np.stack([a, b]), y, METRICS["accuracy"], rounds=10)
    assert weights == pytest.approx([0.5, 0.5])


def test_ties_go_to_a_member_already_chosen(rng):
    y = rng.integers(0, 2, 100)
    p = noisy(rng, y, 0.5, 2)
    weights, history = hill_climb_weights(np.stack([p, p.copy(), p.copy()]), y, METRICS["accuracy"], rounds=5)
    assert list(weights) == [1.0, 0.0, 0.0] and len(history) == 5


def test_minimised_metric_direction_is_honoured_for_regression(rng):
    y = rng.normal(size=500)
    near, far = (y + rng.normal(scale=0.1, size=500))[:, None], (y + 3)[:, None]
    weights, _ = hill_climb_weights(np.stack([far, near]), y, METRICS["rmse"], rounds=5, task="regression")
    assert weights[1] == 1.0


@pytest.mark.parametrize(
    "metric, task",
    [
        ("log_loss", "multiclass"),
        ("accuracy", "multiclass"),
        ("macro_f1", "multiclass"),
        ("log_loss", "binary"),
        ("rmse", "regression"),
        ("mae", "regression"),
    ],
)
def test_vectorised_candidate_scores_equal_the_metric_on_each_reblend(metric, task, rng):
    from pipeline.ensemble import candidate_scorer
    from pipeline.metrics import score_predictions

    n_classes = 2 if task == "binary" else 4
    if task == "regression":
        y = rng.normal(size=400)
        oofs = (y[None] + rng.normal(scale=[[0.2], [0.5], [1.0]], size=(3, 400)))[..., None]
    else:
        y = rng.integers(0, n_classes, 400)
        oofs = np.stack([noisy(rng, y, s, n_classes) for s in (0.5, 1.0, 2.0)])
    running = oofs[0] + oofs[2]  # a bag of two members; each candidate makes it three
    scores = candidate_scorer(METRICS[metric], y, oofs, task)(running, 3)
    expected = [score_predictions(METRICS[metric], y, (running + oofs[m]) / 3, task) for m in range(3)]
    assert scores == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_random_initial_bag_is_kept_in_the_blend_and_seeded(rng):
    y = rng.integers(0, 3, 1000)
    oofs = np.stack([noisy(rng, y, s) for s in (0.8, 1.0, 1.2, 1.4, 1.6)])
    first, _ = hill_climb_weights(oofs, y, METRICS["log_loss"], rounds=0, init="random", init_size=2, seed=3)
    again, _ = hill_climb_weights(oofs, y, METRICS["log_loss"], rounds=0, init="random", init_size=2, seed=3)
    other, _ = hill_climb_weights(oofs, y, METRICS["log_loss"], rounds=0, init="random", init_size=2, seed=4)
    assert (first > 0).sum() == 2 and list(first) == list(again)
    assert (other > 0).sum() == 2


def test_a_best_initial_bag_starts_from_the_best_members(rng):
    y = rng.integers(0, 3, 1000)
    oofs = np.stack([noisy(rng, y, 1.6), noisy(rng, y, 0.6), noisy(rng, y, 1.2)])
    weights, _ = hill_climb_weights(oofs, y, METRICS["log_loss"], rounds=0, init="best", init_size=2)
    assert list(weights) == [0.0, 0.5, 0.5]
