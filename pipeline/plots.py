"""Plots of a model's and an ensemble's results, written as PNG files (and logged to MLflow by the stages).

A model: learning curves per fold, and for classification a confusion matrix and per-class
scores, for regression the out-of-fold residuals. An ensemble: the members' correlation and the
blend's weights. A sweep's plots are in pipeline/tuning/plots.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        # No timestamp in the file, so the same results give the same bytes.
        figure.savefig(tmp, dpi=100, format="png", metadata={"Software": None}, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def learning_curves(history: pd.DataFrame, metric: str, title: str, path: Path) -> Path:
    """Loss (train solid, validation dashed) and the validation metric per epoch: one colour per fold,
    one line per (seed, fold)."""
    plt = _pyplot()
    figure, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.get_cmap("tab10")
    first_seed = history["seed"].min() if "seed" in history else None
    for key, rows in history.groupby(["seed", "fold"] if first_seed is not None else ["fold"], sort=True):
        seed, fold = key if first_seed is not None else (None, key[0])
        colour = colours(int(fold) % 10)
        label = f"fold {fold}" if seed == first_seed else None  # one legend entry per fold
        if "train/loss" in rows:
            loss_ax.plot(rows["epoch"], rows["train/loss"], color=colour, label=label)
        if "val/loss" in rows:
            loss_ax.plot(rows["epoch"], rows["val/loss"], color=colour, linestyle="--")
        score_ax.plot(rows["epoch"], rows["val/score"], color=colour, marker="o", markersize=3, label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss (solid: train, dashed: validation)")
    score_ax.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    score_ax.legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def mean_curves(history: pd.DataFrame) -> pd.DataFrame:
    """Per epoch, the mean over folds (and seeds) of each recorded value: the table `dvc plots` draws."""
    values = [c for c in ("train/loss", "val/loss", "val/score") if c in history]
    curves = history.groupby("epoch", sort=True)[values].mean().reset_index()
    return curves.rename(columns={c: c.replace("/", "_") for c in values})


def confusion_matrix(target: np.ndarray, oof: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    """Rows: true class; columns: predicted (arg-max) class; colour: share of the row, text: counts."""
    plt = _pyplot()
    n = len(classes)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (target.astype(int), oof.argmax(axis=1)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.55 * n + 2)
    figure, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    counts[i, j],
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    return _save(figure, path)


def class_scores(target: np.ndarray, oof: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall and F1 of each class (arg-max predictions), with its number of rows."""
    predicted, truth = oof.argmax(axis=1), target.astype(int)
    rows = []
    for k, name in enumerate(classes):
        hits = np.sum((predicted == k) & (truth == k))
        precision = hits / max(np.sum(predicted == k), 1)
        recall = hits / max(np.sum(truth == k), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(
            {"class": name, "rows": int(np.sum(truth == k)), "precision": precision, "recall": recall, "f1": f1}
        )
    return pd.DataFrame(rows)


def class_scores_plot(scores: pd.DataFrame, title: str, path: Path) -> Path:
    plt = _pyplot()
    n = len(scores)
    figure, ax = plt.subplots(figsize=(max(6.0, 0.7 * n + 2), 4))
    x, width = np.arange(n), 0.27
    for offset, column in zip((-width, 0, width), ("precision", "recall", "f1")):
        ax.bar(x + offset, scores[column], width, label=column)
    ax.set_xticks(x, scores["class"], rotation=45, ha="right")
    low = float(scores[["precision", "recall", "f1"]].min().min())
    ax.set(ylim=(max(0.0, low - 0.05), 1.0), ylabel="score", title=title)
    ax.legend(ncol=3, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def residuals(target: np.ndarray, prediction: np.ndarray, title: str, path: Path) -> Path:
    """Regression: predicted against true, and the residuals' distribution."""
    plt = _pyplot()
    error = prediction - target
    figure, (scatter_ax, hist_ax) = plt.subplots(1, 2, figsize=(11, 4))
    scatter_ax.scatter(target, prediction, s=4, alpha=0.4)
    low, high = float(min(target.min(), prediction.min())), float(max(target.max(), prediction.max()))
    scatter_ax.plot([low, high], [low, high], color="grey", linewidth=1)
    scatter_ax.set(xlabel="true", ylabel="out-of-fold prediction", title="prediction against truth")
    hist_ax.hist(error, bins=50)
    hist_ax.set(
        xlabel="prediction - true", ylabel="rows", title=f"residuals (mean {error.mean():.3g}, sd {error.std():.3g})"
    )
    figure.suptitle(title)
    return _save(figure, path)


def model_plots(
    folder: Path, history: pd.DataFrame, target: np.ndarray, oof: np.ndarray, comp, metric: str, title: str
) -> list[Path]:
    """Every plot of one model's results into `folder` (plots/ of its out_dir), and curves.csv for `dvc plots`."""
    written = []
    if not history.empty and "val/score" in history:
        written.append(learning_curves(history, metric, f"{title}: learning curves", folder / "learning_curves.png"))
        io.write_csv(folder / "curves.csv", mean_curves(history))
        written.append(folder / "curves.csv")
    if comp.task == "regression":
        written.append(residuals(target, oof[:, 0], f"{title}: out-of-fold residuals", folder / "residuals.png"))
    else:
        classes = list(comp.classes)
        written.append(
            confusion_matrix(target, oof, classes, f"{title}: confusion (out-of-fold)", folder / "confusion_matrix.png")
        )
        written.append(
            class_scores_plot(
                class_scores(target, oof, classes),
                f"{title}: per-class scores (out-of-fold)",
                folder / "class_scores.png",
            )
        )
    return written


def feature_importance(gain: pd.Series, title: str, path: Path, top: int = 30) -> Path:
    """The features of most gain (mean over folds), as horizontal bars, largest on top."""
    plt = _pyplot()
    shown = gain.sort_values(ascending=False).head(top)[::-1]
    figure, ax = plt.subplots(figsize=(8, 0.25 * len(shown) + 1.2))
    ax.barh(shown.index.astype(str), shown.to_numpy())
    ax.set(xlabel="gain, mean over folds", title=title)
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def member_correlation(oofs: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Pearson correlation of the members' out-of-fold predictions (all prediction columns together)."""
    plt = _pyplot()
    names = list(oofs)
    matrix = np.atleast_2d(np.corrcoef(np.stack([oofs[n].ravel() for n in names])))  # one member: 1x1
    size = max(4.5, 0.8 * len(names) + 2.5)
    figure, ax = plt.subplots(figsize=(size + 1, size))
    # Members of one ensemble are usually 0.95+ alike: scale the colours to the range they span.
    low = min(float(matrix.min()), 0.99)
    image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.3f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if matrix[i, j] > (low + 1) / 2 else "white",
            )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title(title)
    figure.colorbar(image, ax=ax, fraction=0.046, label="correlation")
    return _save(figure, path)


def ensemble_weights(weights: dict[str, float], title: str, path: Path) -> Path | None:
    """The blend's weight per member; None when the method has no weights (stacking)."""
    finite = {n: w for n, w in weights.items() if np.isfinite(w)}
    if not finite:
        return None
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7, 0.45 * len(finite) + 1.5))
    ax.barh(list(finite)[::-1], list(finite.values())[::-1])
    for y, w in enumerate(list(finite.values())[::-1]):
        ax.text(w, y, f" {w:.3f}", va="center", fontsize=8)
    ax.set(xlabel="weight", title=title, xlim=(0, max(finite.values()) * 1.2 or 1))
    return _save(figure, path)
