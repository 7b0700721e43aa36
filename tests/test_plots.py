"""Plots and the leaderboard table: what a person reads after a run."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support

from pipeline import plots


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.mark.fast
def test_per_class_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, 300)
    oof = rng.random((300, 4)) + np.eye(4)[target] * rng.random((300, 1))  # better than chance, not perfect
    scores = plots.class_scores(target, oof, ["a", "b", "c", "d"])
    precision, recall, f1, support = precision_recall_fscore_support(target, oof.argmax(1), labels=range(4))
    assert np.allclose(scores["precision"], precision) and np.allclose(scores["recall"], recall)
    assert np.allclose(scores["f1"], f1) and scores["rows"].tolist() == support.tolist()


@pytest.mark.fast
def test_mean_curves_average_every_fold_and_seed_per_epoch():
    history = pd.DataFrame(
        {
            "seed": [0, 0, 0, 0, 1, 1],
            "fold": [0, 0, 1, 1, 0, 0],
            "epoch": [0, 1, 0, 1, 0, 1],
            "train/loss": [1.0, 0.5, 3.0, 1.5, 2.0, 1.0],
            "val/score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        }
    )
    curves = plots.mean_curves(history)
    assert curves.columns.tolist() == ["epoch", "train_loss", "val_score"]
    assert curves["train_loss"].tolist() == [2.0, 1.0] and curves["val_score"].tolist() == pytest.approx([0.3, 0.4])


@pytest.mark.fast
def test_regression_gets_residuals_instead_of_a_confusion_matrix(tmp_path):
    class Regression:
        task = "regression"

    rng = np.random.default_rng(1)
    target = rng.normal(size=200)
    history = pd.DataFrame({"fold": [0, 0], "epoch": [0, 1], "val/score": [2.0, 1.0]})
    written = plots.model_plots(
        tmp_path, history, target, (target + rng.normal(scale=0.3, size=200))[:, None], Regression(), "rmse", "mlp"
    )
    assert sorted(p.name for p in written) == ["curves.csv", "learning_curves.png", "residuals.png"]
    width, height = png_size(tmp_path / "residuals.png")
    assert width > 800 and 300 < height < 500


@pytest.mark.integration  # its fixture trains a smoke run
def test_training_and_ensemble_write_plots_and_log_them(smoke_results):
    root = smoke_results.root
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("animals").experiment_id
    for name in ("cnn", "cnn_wide"):
        folder = root / "outputs/animals/models" / name / "plots"
        assert {p.name for p in folder.iterdir()} == {
            "learning_curves.png",
            "confusion_matrix.png",
            "class_scores.png",
            "curves.csv",
        }
        assert png_size(folder / "confusion_matrix.png")[0] >= 400
        curves = pd.read_csv(folder / "curves.csv")
        assert curves["epoch"].tolist() == [0, 1] and {"train_loss", "val_loss", "val_score"} <= set(curves.columns)
        run = client.search_runs([experiment], f"tags.stage = 'train' and tags.model = '{name}'")[0]
        logged = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/learning_curves.png", "plots/confusion_matrix.png", "plots/class_scores.png"} <= logged

    metrics = json.loads((root / "outputs/animals/ensemble/metrics.json").read_text())
    board = metrics["board"]
    assert [row["name"] for row in board] == ["cnn", "cnn_wide", f"ensemble ({metrics['method']}, nested)"]
    assert board[-1]["cv"] == pytest.approx(metrics["cv"]) and board[0]["cv"] == pytest.approx(
        metrics["members"]["cnn"]
    )
    member = json.loads((root / "outputs/animals/models/cnn/metrics.json").read_text())
    assert (
        board[0]["folds"] == pytest.approx(list(member["folds"].values())) and board[0]["seconds"] == member["seconds"]
    )
    # the printed table: a line per member and the blend, each with 2 fold scores, the CV and the time
    printed = smoke_results.printed["ensemble"]
    lines = {line.split()[0]: line for line in printed.splitlines() if line.startswith(("cnn", "ensemble ("))}
    assert f"{board[1]['folds'][1]:.4f}" in lines["cnn_wide"] and lines["cnn"].endswith(" s")
    assert "fold 0" in printed and "weight" in printed
    assert {p.name for p in (root / "outputs/animals/ensemble/plots").iterdir()} >= {"member_correlation.png"}
    ensemble_run = client.search_runs([experiment], "tags.stage = 'ensemble'")[0]
    assert "plots/member_correlation.png" in {a.path for a in client.list_artifacts(ensemble_run.info.run_id, "plots")}

    printed = smoke_results.printed["submit"]
    submitted = json.loads((root / "outputs/animals/submission/metrics.json").read_text())
    assert all(0 <= row["local_leaderboard"] <= 1 for row in submitted["board"])
    assert "local LB" in printed and f"{submitted['local_leaderboard']:.4f}" in printed


@pytest.mark.fast
def test_member_correlation_of_a_single_member(tmp_path):
    path = plots.member_correlation({"cnn": np.random.default_rng(2).random((50, 3))}, "one member", tmp_path / "c.png")
    assert png_size(path)[0] > 300
