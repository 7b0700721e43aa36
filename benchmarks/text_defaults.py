"""Defaults fitted to the data, measured: the text models with the old fixed max_length against `auto`.

    .venv/bin/python benchmarks/text_defaults.py [--competitions rotten-tomatoes rt-documents]
        [--models lstm transformer tfidf] [--settings fixed auto] [--folds 4] [--epochs N] [--budget M]

In a scratch project: rotten-tomatoes (review snippets, median 18 words) and rt-documents, its
long-text variant (each movie's snippets joined, median about 570 words, labelled by the movie's
majority; competitions/rotten-tomatoes/build.py --documents). Each model trains every fold with
`fixed` (the max_length the recipes had before `auto`: LSTM 100, Transformer 64) and with `auto`
(pipeline/training/data_choices.py); TF-IDF reads whole texts and runs once. Each row gives the
max_length used and the share of training texts it truncates, the estimate printed before
training (pipeline/training/estimate.py) beside the measured time, the CV score, and the local
leaderboard score on the held-out test labels. Rows print as each run finishes.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIXED = {"lstm": 100, "transformer": 64}  # the recipes' max_length before `auto`
HEADER = f"{'competition':<16}{'model':<13}{'setting':<8}{'max_len':>8}{'cut':>7}{'epochs':>7}{'estimate':>10}{'measured':>10}{'CV':>8}{'LB':>8}"


def build_data(project: Path) -> None:
    """Both competitions' raw files and the documents variant's competition file, in the scratch project."""
    build = ROOT / "competitions" / "rotten-tomatoes" / "build.py"
    for name, extra in (("rotten-tomatoes", []), ("rt-documents", ["--documents"])):
        subprocess.run(
            [sys.executable, str(build), "--out", str(project / "data" / name), *extra], check=True, cwd=project
        )
    recipe = (ROOT / "conf" / "competition" / "rotten-tomatoes.yaml").read_text()
    recipe = recipe.replace("name: rotten-tomatoes", "name: rt-documents").replace(
        "  group_column: movie       # a movie's snippets stay in one fold", ""
    )
    recipe = recipe.replace("/cv@cv: group ", "/cv@cv: stratified ")  # one row per movie: nothing to group
    (project / "conf" / "competition" / "rt-documents.yaml").write_text(recipe)


def leaderboard(cfg, result_dir: Path, project: Path) -> float:
    """The model's test predictions scored on the held-out labels, as `podium submit` would."""
    from pipeline.submission import build_submission, score_submission

    comp = cfg.competition
    raw = project / "data" / comp.name / "raw"
    test = pd.read_parquet(result_dir / "test.parquet")
    pred = test[[f"prob_{c}" for c in comp.classes]].to_numpy()
    sample = pd.read_csv(raw / "sample_submission.csv")
    sub = build_submission(test[comp.id_column].to_numpy(), pred, sample, comp)
    return score_submission(sub, pd.read_csv(raw / comp.files.solution), comp)


def run(project: Path, competition: str, model: str, setting: str, args) -> str:
    """One training: its row of the table."""
    from pipeline.config import compose
    from pipeline.prepare import load_prepared
    from pipeline.training.data_choices import choose_from_data, token_lengths
    from pipeline.training.estimate import estimate_cost, fit_budget, timer
    from pipeline.training.spec import FoldSpec
    from pipeline.training.train import train

    overrides = [
        f"competition={competition}",
        f"model={model}",
        "tracking=none",
        "train.estimate=false",  # made here, to keep the figure
        "trainer.enable_progress_bar=false",
        f"competition.cv.n_splits={args.folds}",
        f"out_dir=runs/{competition}/{model}-{setting}",
        *([f"model.max_length={FIXED[model]}"] if setting == "fixed" and model in FIXED else []),
        *([f"trainer.max_epochs={args.epochs}"] if args.epochs and model in FIXED else []),
    ]
    cfg = compose(overrides, root=project)
    data = load_prepared(cfg, project / "prepared" / competition)
    estimate, length, cut = None, None, None
    if model in FIXED:
        choose_from_data(cfg, data, say=lambda line: None)
        length = cfg.model.max_length
        lengths = token_lengths(cfg.model, data.train[cfg.competition.text.column].tolist(), project)
        cut = float((lengths > length).mean())
        cost = estimate_cost(FoldSpec.of(cfg), data, 1)
        if args.budget:
            fit_budget(
                cfg,
                cost,
                args.budget,
                say=print,
                retime=timer(cfg, data, 1),
            )
            length = cfg.model.max_length
            cut = float((lengths > length).mean())
            cost = estimate_cost(FoldSpec.of(cfg), data, 1)
        estimate = cost.seconds()
    started = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - started
    lb = leaderboard(cfg, result.out_dir, project)
    epochs = cfg.trainer.max_epochs if model in FIXED else "-"
    return (
        f"{competition:<16}{model:<13}{setting:<8}{length or '-':>8}{f'{cut:.0%}' if cut is not None else '-':>7}"
        f"{epochs:>7}{f'{estimate:.0f} s' if estimate else '-':>10}{f'{seconds:.0f} s':>10}"
        f"{result.cv_score:>8.4f}{lb:>8.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competitions", nargs="+", default=["rotten-tomatoes", "rt-documents"])
    parser.add_argument("--models", nargs="+", default=["tfidf", "lstm", "transformer"])
    parser.add_argument("--settings", nargs="+", default=["fixed", "auto"], choices=["fixed", "auto"])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, help="override the networks' epochs (all rows alike)")
    parser.add_argument("--budget", type=float, help="train.budget_minutes for the networks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="podium-text-defaults-") as scratch:
        project = Path(scratch)
        shutil.copytree(ROOT / "conf", project / "conf")
        shutil.copytree(ROOT / "competitions", project / "competitions")
        build_data(project)
        print(HEADER, flush=True)
        for competition in args.competitions:
            for model in args.models:
                for setting in args.settings if model in FIXED else ["-"]:
                    print(run(project, competition, model, setting, args), flush=True)
    print("estimate: from timed batches of fold 0 before training; measured: the whole training, predictions included")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
