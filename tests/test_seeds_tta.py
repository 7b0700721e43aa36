"""Seed averaging (`train.seeds`) and test-time augmentation (`tta=`), on real (shrunk) training."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.ensemble import ensemble
from pipeline.errors import PodiumError
from pipeline.tracking import tracking_uri
from pipeline.training.train import train
from pipeline.training.tta import View

TINY = ("trainer=smoke", "model.width=8", "model.depth=2", "model.hidden=16")


def prob_columns(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy()


def test_seeds_train_once_each_and_average_into_the_model(make_cfg):
    cfg = make_cfg(*TINY, "train.seeds=[0,1]", "out_dir=outputs/animals/models/cnn")
    result = train(cfg)
    seeds = [prob_columns(pd.read_parquet(result.out_dir / f"seeds/seed_{s}/oof.parquet")) for s in (0, 1)]
    averaged = prob_columns(pd.read_parquet(result.out_dir / "oof.parquet"))
    assert not np.allclose(seeds[0], seeds[1])  # each seed its own model
    assert averaged == pytest.approx((seeds[0] + seeds[1]) / 2, abs=1e-6)
    assert set(json.loads((result.out_dir / "metrics.json").read_text())["seeds"]) == {"0", "1"}
    client = mlflow.MlflowClient(tracking_uri(cfg))
    folds = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage = 'train_fold'")
    assert sorted((r.data.tags["seed"], r.data.tags["fold"]) for r in folds) == [
        ("0", "0"),
        ("0", "1"),
        ("1", "0"),
        ("1", "1"),
    ]

    separate = ensemble(
        make_cfg(
            *TINY,
            "ensemble.members=[cnn]",
            "ensemble.seeds=separate",
            "ensemble.method=mean",
            "out_dir=outputs/animals/ensemble",
        )
    )
    assert list(separate.member_scores) == ["cnn/seed_0", "cnn/seed_1"]
    averaged_member = ensemble(
        make_cfg(
            *TINY,
            "ensemble.members=[cnn]",
            "ensemble.seeds=average",  # animals' own setting is separate (its overrides:)
            "ensemble.method=mean",
            "out_dir=outputs/animals/ensemble",
        )
    )
    assert list(averaged_member.member_scores) == ["cnn"]
    # the mean of the two seeds as separate members is the seed average
    assert separate.cv_score == pytest.approx(averaged_member.cv_score)


def test_a_competition_recipe_sets_seeds_and_a_repeated_seed_is_refused(make_cfg):
    assert list(make_cfg("model=cnn").train.seeds) == [0, 1, 2]  # conf/competition/animals.yaml: seeds: {cnn: ...}
    assert make_cfg("model=efficientnet").train.seeds is None
    assert list(make_cfg("model=cnn", "train.seeds=[4]").train.seeds) == [4]
    with pytest.raises(PodiumError, match=r"train\.seeds=\[1, 1\] repeats a seed"):
        train(make_cfg(*TINY, "train.seeds=[1,1]", "out_dir=runs/repeated"))


def test_tta_changes_predictions_and_keeps_ids(make_cfg):
    plain = train(make_cfg(*TINY, "train.seeds=[0]", "tta=none", "tracking=none", "out_dir=runs/plain"))
    flipped = train(make_cfg(*TINY, "train.seeds=[0]", "tta=flip", "tracking=none", "out_dir=runs/flip"))
    for name in ("oof", "test"):
        a, b = (pd.read_parquet(r.out_dir / f"{name}.parquet") for r in (plain, flipped))
        assert a["id"].tolist() == b["id"].tolist()
        pa, pb = prob_columns(a), prob_columns(b)
        assert not np.allclose(pa, pb, atol=1e-4) and np.allclose(pb.sum(1), 1, atol=1e-4)


def test_views_move_pixels_as_configured():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 1] = 1.0
    assert View(hflip=True).apply(x)[0, 0, 2, 3] == 1.0
    assert torch.equal(View(hflip=True).apply(View(hflip=True).apply(x)), x)
    shifted = View(shift=(1.0, 0.0)).apply(x)
    assert shifted[0, 0, 2, 2] == pytest.approx(1.0) and shifted.sum() == pytest.approx(1.0)
    down = View(shift=(0.0, -1.0)).apply(x)
    assert down[0, 0, 1, 1] == pytest.approx(1.0)
    assert torch.equal(View().apply(x), x)


@pytest.mark.parametrize(
    "override, message",
    [
        ("tta.views=[{rotate:10}]", r"tta\.views\[0\] has unknown key\(s\) \['rotate'\]"),
        ("tta.views=[{shift:[1]}]", r"tta\.views\[0\]: shift must be \[right, down\]"),
        ("tta.merge=median", r"tta\.merge is 'median'; valid values are mean, geometric_mean, max"),
    ],
)
def test_a_bad_tta_is_refused_before_training(project, make_cfg, override, message):
    with pytest.raises(PodiumError, match=message):
        train(make_cfg(*TINY, override, "out_dir=runs/bad_tta"))
    assert not (project / "runs/bad_tta").exists()


def test_tta_on_a_text_competition_is_refused(make_text_cfg):
    with pytest.raises(PodiumError, match=r"tta.views are image transforms"):
        train(make_text_cfg("trainer=smoke", "model=tfidf", "tta=flip", "out_dir=runs/text_tta"))
