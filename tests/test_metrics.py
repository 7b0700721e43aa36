"""Every registered metric agrees with scikit-learn and states its direction."""

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline.errors import PodiumError
from pipeline.metrics import METRICS, get_metric

pytestmark = pytest.mark.fast  # no training, no servers

rng = np.random.default_rng(0)
N, C = 500, 4
Y = rng.integers(0, C, N)
P = rng.dirichlet(np.ones(C), N)
P[np.arange(N), Y] += rng.random(N)  # informative but imperfect
P /= P.sum(1, keepdims=True)
YB = rng.integers(0, 2, N)
PB = np.stack([1 - (s := np.clip(YB * 0.3 + rng.random(N) * 0.7, 0, 1)), s], 1)
PB[:50, 1] = 0.5  # ties, which AUC must average
YR = rng.normal(size=N)
PR = YR + rng.normal(scale=0.5, size=N)


@pytest.mark.parametrize(
    "name, ours, theirs",
    [
        ("accuracy", lambda: (Y, P), lambda: skm.accuracy_score(Y, P.argmax(1))),
        ("log_loss", lambda: (Y, P), lambda: skm.log_loss(Y, P)),
        ("roc_auc", lambda: (Y, P), lambda: skm.roc_auc_score(Y, P, multi_class="ovr", average="macro")),
        ("roc_auc", lambda: (YB, PB), lambda: skm.roc_auc_score(YB, PB[:, 1])),
        ("macro_f1", lambda: (Y, P), lambda: skm.f1_score(Y, P.argmax(1), average="macro")),
        ("qwk", lambda: (Y, P), lambda: skm.cohen_kappa_score(Y, P.argmax(1), weights="quadratic")),
        ("rmse", lambda: (YR, PR), lambda: skm.root_mean_squared_error(YR, PR)),
        ("mae", lambda: (YR, PR), lambda: skm.mean_absolute_error(YR, PR)),
        ("r2", lambda: (YR, PR), lambda: skm.r2_score(YR, PR)),
        ("rmsle", lambda: (np.exp(YR), np.exp(PR)), lambda: skm.root_mean_squared_log_error(np.exp(YR), np.exp(PR))),
    ],
)
def test_metric_matches_sklearn(name, ours, theirs):
    y, p = ours()
    assert METRICS[name](y, p) == pytest.approx(theirs(), rel=1e-9, abs=1e-12)


def test_directions():
    assert {n for n, m in METRICS.items() if m.direction == "minimize"} == {"log_loss", "rmse", "mae", "rmsle"}
    acc, loss = METRICS["accuracy"], METRICS["log_loss"]
    assert acc.better(0.9, 0.8) and not acc.better(0.8, 0.9)
    assert loss.better(0.1, 0.2) and loss.worst == np.inf


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(PodiumError, match="valid metrics are accuracy"):
        get_metric("f2")


def test_rmsle_counts_a_negative_prediction_as_zero():
    y = np.array([1.0, 2.0, 3.0])
    assert METRICS["rmsle"](y, np.array([-5.0, 2.0, 3.0])) == pytest.approx(
        skm.root_mean_squared_log_error(y, np.array([0.0, 2.0, 3.0]))
    )
