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


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, by file name: a test reads what a plot shows from its artists."""
    figures, save = {}, plots._save

    def keep(figure, path):
        figures[path.name] = figure
        return save(figure, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def texts(ax):
    return [t.get_text() for t in ax.texts]


def ticks(axis):
    return [t.get_text() for t in axis.get_ticklabels()]


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
def test_confusion_matrix_shows_each_true_class_row_share_and_counts(tmp_path, drawn):
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(3)
    target = rng.integers(0, 3, 90)
    oof = rng.random((90, 3)) + np.eye(3)[target] * 0.4
    plots.confusion_matrix(target, oof, ["cat", "dog", "owl"], "t", tmp_path / "confusion.png")
    ax = drawn["confusion.png"].axes[0]
    counts = confusion_matrix(target, oof.argmax(1), labels=range(3))  # rows: true, columns: predicted
    np.testing.assert_allclose(ax.images[0].get_array(), counts / counts.sum(1, keepdims=True))
    assert texts(ax) == [str(c) for c in counts.ravel() if c]  # row by row, zero cells left blank
    assert ticks(ax.xaxis) == ticks(ax.yaxis) == ["cat", "dog", "owl"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true") and png_size(tmp_path / "confusion.png")


@pytest.mark.fast
def test_learning_curves_draw_every_fold_and_seed_epoch_by_epoch(tmp_path, drawn):
    history = pd.DataFrame(
        {
            "seed": [0, 0, 0, 0, 1, 1],
            "fold": [0, 0, 1, 1, 0, 0],
            "epoch": [0, 1, 0, 1, 0, 1],
            "train/loss": [1.0, 0.5, 3.0, 1.5, 2.0, 1.0],
            "val/loss": [1.1, 0.6, 3.1, 1.6, 2.1, 1.1],
            "val/score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        }
    )
    plots.learning_curves(history, "accuracy", "t", tmp_path / "curves.png")
    loss_ax, score_ax = drawn["curves.png"].axes
    lines = [line.get_ydata().tolist() for line in loss_ax.lines]  # (seed, fold) in order: train then validation
    assert lines == [[1.0, 0.5], [1.1, 0.6], [3.0, 1.5], [3.1, 1.6], [2.0, 1.0], [2.1, 1.1]]
    assert [line.get_ydata().tolist() for line in score_ax.lines] == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    assert [line.get_linestyle() for line in loss_ax.lines[:2]] == ["-", "--"]
    assert [t.get_text() for t in score_ax.get_legend().get_texts()] == ["fold 0", "fold 1"]  # once per fold
    assert score_ax.get_ylabel() == "accuracy"


@pytest.mark.fast
def test_class_scores_bars_are_the_scores(tmp_path, drawn):
    scores = pd.DataFrame(
        {"class": ["a", "b"], "rows": [5, 7], "precision": [0.9, 0.5], "recall": [0.8, 0.25], "f1": [0.85, 1 / 3]}
    )
    plots.class_scores_plot(scores, "t", tmp_path / "scores.png")
    ax = drawn["scores.png"].axes[0]
    heights = [bar.get_height() for bar in ax.patches]  # precision of each class, then recall, then F1
    assert heights == pytest.approx([0.9, 0.5, 0.8, 0.25, 0.85, 1 / 3])
    assert ticks(ax.xaxis) == ["a", "b"] and ax.get_ylim() == pytest.approx((0.2, 1.0))  # from just below the lowest


@pytest.mark.fast
def test_member_correlation_shows_the_correlations_and_ensemble_weights_the_weights(tmp_path, drawn):
    rng = np.random.default_rng(4)
    base = rng.random((60, 3))
    oofs = {"cnn": base, "lstm": base + rng.normal(scale=0.2, size=base.shape), "tfidf": rng.random((60, 3))}
    plots.member_correlation(oofs, "t", tmp_path / "correlation.png")
    ax = drawn["correlation.png"].axes[0]
    matrix = np.corrcoef(np.stack([o.ravel() for o in oofs.values()]))
    np.testing.assert_allclose(ax.images[0].get_array(), matrix)
    assert texts(ax) == [f"{c:.3f}" for c in matrix.ravel()] and ticks(ax.yaxis) == ["cnn", "lstm", "tfidf"]
    assert ax.images[0].get_clim() == (pytest.approx(matrix.min()), 1)  # colours span the range the members cover

    plots.ensemble_weights({"cnn": 0.7, "lstm": 0.3, "tfidf": float("nan")}, "t", tmp_path / "weights.png")
    ax = drawn["weights.png"].axes[0]
    assert [bar.get_width() for bar in ax.patches] == pytest.approx([0.3, 0.7])  # drawn bottom up, NaN left out
    assert ticks(ax.yaxis) == ["lstm", "cnn"]
    assert plots.ensemble_weights({"meta": float("nan")}, "stacking", tmp_path / "none.png") is None


@pytest.mark.fast
def test_regression_gets_residuals_instead_of_a_confusion_matrix(tmp_path, drawn):
    class Regression:
        task = "regression"

    rng = np.random.default_rng(1)
    target = rng.normal(size=200)
    history = pd.DataFrame({"fold": [0, 0], "epoch": [0, 1], "val/score": [2.0, 1.0]})
    prediction = target + rng.normal(scale=0.3, size=200)
    written = plots.model_plots(tmp_path, history, target, prediction[:, None], Regression(), "rmse", "mlp")
    assert sorted(p.name for p in written) == ["curves.csv", "learning_curves.png", "residuals.png"]
    scatter_ax, hist_ax = drawn["residuals.png"].axes
    np.testing.assert_allclose(scatter_ax.collections[0].get_offsets(), np.c_[target, prediction])
    assert sum(bar.get_height() for bar in hist_ax.patches) == 200  # every row's residual in the histogram
    assert (
        hist_ax.get_title()
        == f"residuals (mean {(prediction - target).mean():.3g}, sd {(prediction - target).std():.3g})"
    )


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
        assert all(png_size(folder / f) for f in ("learning_curves.png", "confusion_matrix.png", "class_scores.png"))
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
def test_member_correlation_of_a_single_member(tmp_path, drawn):
    plots.member_correlation({"cnn": np.random.default_rng(2).random((50, 3))}, "one member", tmp_path / "c.png")
    ax = drawn["c.png"].axes[0]
    assert ax.images[0].get_array().tolist() == [[1.0]] and texts(ax) == ["1.000"]
