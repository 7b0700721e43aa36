"""Submissions follow the sample file exactly; every departure is named; scoring matches the metric."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.errors import PodiumError
from pipeline.submission import build_submission, check_submission, score_submission, validate_submission

pytestmark = pytest.mark.fast  # no training, no servers

CLASSES = ["cat", "dog", "owl"]


def comp(task="multiclass", fmt="labels", classes=CLASSES):
    return OmegaConf.create(
        {
            "task": task,
            "id_column": "id",
            "target_column": "label",
            "classes": classes,
            "metric": "accuracy" if task != "regression" else "rmse",
            "submission": {"format": fmt},
        }
    )


SAMPLE = pd.DataFrame({"id": ["c", "a", "b", "d"], "label": "cat"})
PRED = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]])  # rows for ids a, b, c, d
IDS = np.array(["a", "b", "c", "d"])


def test_labels_follow_the_sample_order():
    sub = build_submission(IDS, PRED, SAMPLE, comp())
    assert sub["id"].tolist() == ["c", "a", "b", "d"] and sub["label"].tolist() == ["owl", "cat", "dog", "cat"]
    assert validate_submission(sub, SAMPLE, comp()) == []


def test_probabilities_per_class():
    sample = pd.DataFrame({"id": ["c", "a", "b", "d"], "cat": 0.0, "dog": 0.0, "owl": 0.0})
    sub = build_submission(IDS, PRED, sample, comp(fmt="probabilities"))
    assert list(sub.columns) == ["id", *CLASSES] and np.allclose(sub[CLASSES].sum(axis=1), 1)
    assert sub.loc[0, "owl"] == pytest.approx(0.6)
    assert validate_submission(sub, sample, comp(fmt="probabilities")) == []


def test_missing_prediction_for_a_sample_id_is_refused():
    with pytest.raises(PodiumError, match=r"No prediction for sample-submission id\(s\) \['d'\]"):
        build_submission(IDS[:3], PRED[:3], SAMPLE, comp())


def good():
    return build_submission(IDS, PRED, SAMPLE, comp())


PROB_SAMPLE = pd.DataFrame({"id": ["c", "a", "b", "d"], "cat": 0.0, "dog": 0.0, "owl": 0.0})


def good_probs():
    return build_submission(IDS, PRED, PROB_SAMPLE, comp(fmt="probabilities"))


@pytest.mark.parametrize(
    "make_bad, sample, fmt, expected",
    [
        (
            lambda: good().rename(columns={"label": "animal"}),
            SAMPLE,
            "labels",
            r"columns are \['id', 'animal'\], expected \['id', 'label'\]",
        ),
        (lambda: good().iloc[:3], SAMPLE, "labels", r"3 rows, expected 4.*ids differ from the sample: missing \['d'\]"),
        (lambda: good().iloc[[1, 0, 2, 3]], SAMPLE, "labels", r"ids are not in the sample submission's order"),
        (lambda: pd.concat([good().iloc[:3], good().iloc[:1]]), SAMPLE, "labels", r"duplicated ids, e\.g\. \['c'\]"),
        (lambda: good().assign(label=["cat", None, "dog", "cat"]), SAMPLE, "labels", r"1 empty label"),
        (lambda: good().assign(label=["cat", "emu", "dog", "cat"]), SAMPLE, "labels", r"unknown label\(s\) \['emu'\]"),
        (
            lambda: good_probs().assign(dog=[0.1, np.nan, 0.2, 0.3]),
            PROB_SAMPLE,
            "probabilities",
            r"1 NaN or infinite value",
        ),
        (
            lambda: good_probs().assign(dog=[0.1, np.inf, 0.2, 0.3]),
            PROB_SAMPLE,
            "probabilities",
            r"1 NaN or infinite value",
        ),
        (
            lambda: good_probs().assign(dog=["x", "y", "z", "w"]),
            PROB_SAMPLE,
            "probabilities",
            r"column 'dog' holds non-numbers, e\.g\. \['x', 'y', 'z', 'w'\], expected numbers",
        ),
        (lambda: good_probs().assign(dog=1.5), PROB_SAMPLE, "probabilities", r"probabilities outside \[0, 1\]"),
        (lambda: good_probs().assign(dog=0.9), PROB_SAMPLE, "probabilities", r"do not sum to 1"),
    ],
)
def test_each_bad_submission_is_named(make_bad, sample, fmt, expected):
    with pytest.raises(PodiumError, match=r"Invalid submission sub\.csv: .*" + expected):
        check_submission(make_bad(), sample, comp(fmt=fmt), "sub.csv")


def test_local_score_is_the_metric_on_the_solution():
    solution = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": ["cat", "dog", "cat", "dog"]})
    # predicted labels: a cat, b dog, c owl, d cat -> 2 of 4 right
    assert score_submission(good(), solution, comp()) == pytest.approx(0.5)
    probs = good_probs()
    assert score_submission(probs, solution, comp(fmt="probabilities")) == pytest.approx(0.5)


def test_binary_probability_submission_scores_roc_auc():
    c = comp(task="binary", fmt="probabilities", classes=["no", "yes"])
    c.metric = "roc_auc"
    sample = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": 0.5})
    pred = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    sub = build_submission(IDS, pred, sample, c)
    assert sub["label"].tolist() == pytest.approx([0.1, 0.8, 0.6, 0.3])
    solution = pd.DataFrame({"id": ["a", "b", "c", "d"], "label": ["no", "yes", "no", "yes"]})
    assert score_submission(sub, solution, c) == pytest.approx(0.75)


def test_submit_refuses_non_finite_predictions_and_writes_nothing(make_cfg):
    from pipeline.predictions import Predictions
    from pipeline.submit import submission_path, submit

    cfg = make_cfg("tracking=none", "out_dir=outputs/animals/submission")
    sample = pd.read_csv(f"{cfg.paths.root}/data/animals/raw/sample_submission.csv", dtype={"id": str})
    test = np.full((len(sample), 10), 0.1)
    test[5] = np.nan
    source = submission_path(cfg).parent.parent / "diverged"
    source.mkdir(parents=True)
    Predictions(
        np.array(["a"]), np.array([0]), np.array([0]), np.full((1, 10), 0.1), sample["id"].to_numpy(), test
    ).save(source, cfg.competition)
    with pytest.raises(PodiumError, match=r"1 test row\(s\) have NaN or infinite predictions"):
        submit(cfg, source)
    assert not submission_path(cfg).exists()
