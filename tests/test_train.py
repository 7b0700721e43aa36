"""Real Lightning training on real (shrunk) data, tracked in a real MLflow store."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.ensemble import ensemble
from pipeline.submit import submit
from pipeline.tracking import tracking_uri
from pipeline.training.train import train


@pytest.fixture
def cnn_run(make_cfg):
    cfg = make_cfg(
        "data.limit_train_rows=1500",
        "competition.cv.n_splits=3",
        "trainer.max_epochs=3",
        "train.seeds=[0]",
        "trainer.enable_progress_bar=false",
        "model.width=16",
        "model.batch_size=32",
        "out_dir=outputs/animals/models/cnn",
    )
    return cfg, train(cfg)


def test_cnn_learns_and_writes_complete_out_of_fold_predictions(cnn_run):
    cfg, result = cnn_run
    assert result.cv_score > 0.6, "3 epochs on 1,000 images learn far beyond chance (0.1)"
    assert len(result.fold_scores) == 3 and all(0 <= e < 3 for e in result.best_epochs)
    oof = pd.read_parquet(result.out_dir / "oof.parquet")
    assert len(oof) == 1500 and oof["id"].is_unique and sorted(oof["fold"].unique()) == [0, 1, 2]
    probs = oof[[f"prob_{c}" for c in cfg.competition.classes]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert (probs.argmax(1) == oof["target"]).mean() == pytest.approx(result.cv_score)
    test = pd.read_parquet(result.out_dir / "test.parquet")
    assert len(test) == 1944 and test["id"].is_unique
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["cv"] == pytest.approx(result.cv_score) and len(metrics["folds"]) == 3
    history = pd.read_csv(result.out_dir / "history.csv")
    assert len(history) == 9 and {"train/loss", "val/loss", "val/score"} <= set(history.columns)


def test_training_is_tracked_with_nested_fold_runs(cnn_run):
    cfg, result = cnn_run
    client = mlflow.MlflowClient(tracking_uri(cfg))
    parent = client.get_run(result.run_id)
    assert parent.data.tags["competition"] == "animals" and parent.data.tags["stage"] == "train"
    assert len(parent.data.tags["config_hash"]) == 12 and "git_commit" in parent.data.tags
    assert parent.data.params["model.width"] == "16"
    assert parent.data.metrics["cv_accuracy"] == pytest.approx(result.cv_score)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"oof.parquet", "test.parquet", "metrics.json", "config.yaml"} <= artifacts
    experiment = client.get_experiment_by_name("animals")
    folds = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(r.data.tags["fold"] for r in folds) == ["0", "1", "2"]
    history = client.get_metric_history(folds[0].info.run_id, "val_score")
    assert [m.step for m in history] == [0, 1, 2]  # one point per epoch


def test_ensemble_and_submission_from_trained_members(cnn_run, make_cfg):
    cfg, cnn = cnn_run
    # a second, different member: the same CNN without augmentation
    other = make_cfg(
        "data.limit_train_rows=1500",
        "competition.cv.n_splits=3",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "model.width=16",
        "model.batch_size=32",
        "augment=none",
        "model.name=cnn_plain",
        "out_dir=outputs/animals/models/cnn_plain",
    )
    train(other)
    blend_cfg = make_cfg(
        "data.limit_train_rows=1500",
        "competition.cv.n_splits=3",
        "ensemble.members=[cnn,cnn_plain]",
        "out_dir=outputs/animals/ensemble",
    )
    result = ensemble(blend_cfg)
    by_method = {m.method: m for m in result.methods}
    assert set(by_method) == {"mean", "weighted", "hill_climb", "stack"}  # rank_mean: accuracy is not an order metric
    best_nested = max(m.nested for m in result.methods)
    assert result.cv_score == best_nested and by_method[result.method].nested == best_nested  # chosen by nested CV
    assert sum(result.weights.values()) == pytest.approx(1.0)
    oof = pd.read_parquet(result.out_dir / "oof.parquet")  # the nested, held-out predictions: its score is the CV
    probs = oof[[f"prob_{c}" for c in cfg.competition.classes]].to_numpy()
    assert (probs.argmax(1) == oof["target"]).mean() == pytest.approx(result.cv_score)
    sub = submit(make_cfg("out_dir=outputs/animals/submission"))
    frame = pd.read_csv(sub.path, dtype={"id": str})
    sample = pd.read_csv(cfg.paths.root + "/data/animals/raw/sample_submission.csv", dtype={"id": str})
    assert frame["id"].tolist() == sample["id"].tolist() and set(frame["label"]) <= set(cfg.competition.classes)
    assert 0.5 < sub.leaderboard_score <= 1 and sub.cv_score == pytest.approx(result.cv_score)
    assert [row["name"] for row in sub.board] == ["cnn", "cnn_plain", f"ensemble ({result.method}, nested)"]
    assert all(0.5 < row["local_leaderboard"] <= 1 for row in sub.board)  # each member scored beside its CV
    assert sub.board[0]["cv"] == pytest.approx(cnn.cv_score)
    client = mlflow.MlflowClient(tracking_uri(cfg))
    submit_run = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage = 'submit'")[
        0
    ]
    assert {"cv_accuracy", "cv_in_sample_accuracy", "leaderboard_accuracy", "member_leaderboard_cnn"} <= set(
        submit_run.data.metrics
    )


def test_pretrained_efficientnet_fine_tunes(make_cfg):
    cfg = make_cfg(
        "model=efficientnet",
        "data.limit_train_rows=800",
        "competition.cv.n_splits=2",
        "trainer.max_epochs=2",
        "model.batch_size=32",
        "trainer.enable_progress_bar=false",
        "tracking=none",
        "out_dir=runs/effnet",
    )
    result = train(cfg)
    test = pd.read_parquet(result.out_dir / "test.parquet")
    probs = test.drop(columns="id").to_numpy()
    assert probs.shape == (1944, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert result.cv_score > 0.2, "ImageNet features beat chance (0.1) after two short epochs"


def test_efficientnet_batchnorm_adapts_at_the_configured_rate(make_cfg):
    import torch

    from pipeline.models import family

    cfg = make_cfg("model=efficientnet", "model.bn_momentum=0.2")
    net = family("efficientnet").builders().build_image(cfg.model, 1, 28, 28, 10)
    momenta = [m.momentum for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(momenta) > 40 and all(abs(m - 0.2) < 1e-9 for m in momenta)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_podium_train_from_the_shell_writes_its_own_run_folder(project):
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "competition=animals",
        "model=cnn",
        "model.optimizer.lr=3e-4",
        "trainer.max_epochs=2",
        "data.limit_train_rows=600",
        "competition.cv.n_splits=2",
        "model.batch_size=32",
        "trainer.enable_progress_bar=false",
        "train.seeds=[0]",
    ]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CV (all OOF)" in done.stdout  # the per-fold table
    runs = list((project / "runs" / "animals" / "cnn").iterdir())
    assert len(runs) == 1 and (runs[0] / "oof.parquet").is_file() and (runs[0] / "prepared").is_dir()
    assert not (project / "outputs" / "animals" / "models").exists()  # the pipeline's outputs are untouched
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage = 'train'")[0]
    assert run.data.params["model.optimizer.lr"] == "0.0003" and run.data.params["trainer.max_epochs"] == "2"
    assert "Warning" not in done.stderr, done.stderr  # a normal run prints no warnings


def test_a_schedule_too_short_for_its_steps_names_the_config_key(make_cfg):
    from pipeline.errors import PodiumError

    # 550 training rows a fold at batch 128 make 4 steps, and a one-cycle warm-up of 25% of 4 steps is empty
    cfg = make_cfg(
        "data.limit_train_rows=1100",
        "competition.cv.n_splits=2",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "tracking=none",
        "out_dir=runs/short",
    )
    with pytest.raises(
        PodiumError,
        match=r"Cannot build model\.scheduler \(torch\.optim\.lr_scheduler\.OneCycleLR\) "
        r"with \{'total_steps': 4\}: ZeroDivisionError",
    ):
        train(cfg)


def test_a_diverging_model_is_refused_and_writes_nothing(make_cfg):
    from pipeline.errors import PodiumError

    cfg = make_cfg(
        "data.limit_train_rows=300",
        "competition.cv.n_splits=2",
        "trainer.max_epochs=1",
        "model.batch_size=32",
        "model.optimizer.lr=1e12",
        "model.scheduler=null",
        "trainer.precision=32-true",
        "train.seeds=[0]",
        "trainer.enable_progress_bar=false",
        "tracking=none",
        "out_dir=runs/diverged",
    )
    with pytest.raises(
        PodiumError, match=r"cnn fold 0: the training loss became nan at epoch 0, batch \d+: the run diverged"
    ):
        train(cfg)
    assert not (Path(cfg.paths.root) / "runs/diverged/oof.parquet").exists()


def test_compiled_channels_last_network_computes_what_the_plain_one_does(make_cfg):
    """train.compile and train.channels_last change how the network runs, not what it computes or saves."""
    import copy
    import dataclasses

    import torch

    from pipeline.prepare import load_prepared
    from pipeline.training.data_choices import choose_from_data
    from pipeline.training.fold import build_module
    from pipeline.training.inputs import fold_inputs
    from pipeline.training.spec import FoldSpec

    fast_cfg = make_cfg(
        "trainer=smoke",
        "trainer.precision=32-true",
        "train.seeds=[0]",
        "tracking=none",
        "train.compile=true",
        "train.channels_last=true",
        "out_dir=runs/fast",
    )
    result = train(fast_cfg)  # end to end: trains, checkpoints, predicts
    assert pd.read_parquet(result.out_dir / "oof.parquet")["id"].is_unique
    weights = torch.load(FoldSpec.of(fast_cfg).fold_state(0).folder / "best.ckpt", weights_only=True)["state_dict"]
    assert all(k.startswith("net.") and "_orig_mod" not in k for k in weights), "the plain network's names"

    data = load_prepared(fast_cfg, scratch=result.out_dir / "prepared")
    plain_cfg = make_cfg("trainer=smoke", "trainer.precision=32-true", "tracking=none")
    for cfg in (fast_cfg, plain_cfg):
        choose_from_data(cfg, data)  # class_weights auto, as the stage resolves it
    inputs = fold_inputs(FoldSpec.of(fast_cfg), data, data.train["fold"].to_numpy() == 0)
    plain = build_module(FoldSpec.of(plain_cfg), dataclasses.replace(inputs, net=copy.deepcopy(inputs.net))).eval()
    fast = build_module(FoldSpec.of(fast_cfg), inputs).eval()
    images = torch.from_numpy(data.test_images[:64].copy())
    with torch.no_grad():
        assert torch.allclose(fast(images), plain(images), atol=1e-4)
