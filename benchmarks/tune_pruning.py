"""Pruned against unpruned sweeps: epochs consumed, wall time and best value for the same budget.

    .venv/bin/python benchmarks/tune_pruning.py [--trials 30 --epochs 12 --rows 4000 --warmups 0.25]

Every sweep runs `podium tune` on the animals CNN (its search space in conf/tune/cnn.yaml) in this
one process, one after the other: the same trial budget, sampler seed, rows, fold and epochs.
One sweep per `--warmups` value uses the MedianPruner (a trial below the median of earlier
trials at the same epoch stops, once it has had that fraction of its epochs); the last uses
none. Studies live in a temporary SQLite file; tracking is off. The noise yardstick is the
binomial standard error of accuracy on the scored fold's rows.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time

import optuna

from pipeline.config.compose import find_root
from pipeline.report import table
from pipeline.tuning import tune


def sweep(pruner: str, warmup: float, args, folder: str) -> dict:
    name = f"{pruner}-{warmup}" if pruner != "none" else pruner
    overrides = [
        "competition=animals",
        "model=cnn",
        "tracking=none",
        f"tune.storage=sqlite:///{folder}/bench.db",
        f"tune.name={name}",
        f"tune.n_trials={args.trials}",
        "tune.folds=1",
        f"tune.pruner.name={pruner}",
        f"tune.pruner.warmup={warmup}",
        f"trainer.max_epochs={args.epochs}",
        f"data.limit_train_rows={args.rows}",
        "trainer.enable_progress_bar=false",
        "tune.write_best=false",
        f"out_dir={folder}/{name}",
    ]
    started = time.perf_counter()
    result = tune(overrides, root=find_root())
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name=result.study, storage=f"sqlite:///{folder}/bench.db")
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {
        "pruner": name,
        "epochs": epochs,
        "seconds": seconds,
        "best": result.best_value,
        "complete": result.counts["complete"],
        "pruned": result.counts["pruned"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rows", type=int, default=4000, help="training rows kept (5 folds: fold 0 scores a fifth)")
    parser.add_argument(
        "--warmups", type=float, nargs="+", default=[0.25], help="tune.pruner.warmup of each pruned sweep"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  %(message)s")
    logging.getLogger("pipeline.tuning").setLevel(logging.INFO)  # one line per trial
    with tempfile.TemporaryDirectory() as folder:
        rows = [sweep("median", w, args, folder) for w in args.warmups] + [sweep("none", 0.0, args, folder)]
    full = rows[-1]
    print(
        table(
            [
                "pruner",
                "trials complete",
                "pruned",
                "epochs",
                "epochs saved",
                "wall s",
                "time saved",
                "best accuracy",
                "vs unpruned",
            ],
            [
                [
                    r["pruner"],
                    r["complete"],
                    r["pruned"],
                    r["epochs"],
                    f"{1 - r['epochs'] / full['epochs']:.0%}",
                    round(r["seconds"]),
                    f"{1 - r['seconds'] / full['seconds']:.0%}",
                    r["best"],
                    f"{r['best'] - full['best']:+.4f}",
                ]
                for r in rows
            ],
        )
    )
    n_scored = args.rows // 5
    noise = math.sqrt(full["best"] * (1 - full["best"]) / n_scored)
    print(f"\nnoise: one standard error of accuracy {full['best']:.4f} on {n_scored} scored rows is {noise:.4f}")


if __name__ == "__main__":
    main()
