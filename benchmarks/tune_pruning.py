"""Pruned against unpruned sweeps: epochs consumed, wall time and best value for the same budget.

    .venv/bin/python benchmarks/tune_pruning.py [--trials 16 --epochs 6 --rows 4000]

Both sweeps run `podium tune` on the animals CNN (its search space in conf/tune/cnn.yaml) in this
one process, one after the other: the same trial budget, sampler seed, rows, fold and epochs.
One uses the default MedianPruner (trials that fall below the median of earlier trials at the
same epoch stop), the other none. Studies live in a temporary SQLite file; tracking is off.
The noise yardstick is the binomial standard error of accuracy on the scored fold's rows.
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


def sweep(pruner: str, args, folder: str) -> dict:
    overrides = ["competition=animals", "model=cnn", "tracking=none", f"tune.storage=sqlite:///{folder}/bench.db",
                 f"tune.name={pruner}", f"tune.n_trials={args.trials}", "tune.folds=1", f"tune.pruner.name={pruner}",
                 f"trainer.max_epochs={args.epochs}", f"data.limit_train_rows={args.rows}", "trainer.enable_progress_bar=false",
                 "tune.write_best=false", f"out_dir={folder}/{pruner}"]
    started = time.perf_counter()
    result = tune(overrides, root=find_root())
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name=result.study, storage=f"sqlite:///{folder}/bench.db")
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {"pruner": pruner, "epochs": epochs, "seconds": seconds, "best": result.best_value,
            "complete": result.counts["complete"], "pruned": result.counts["pruned"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rows", type=int, default=4000, help="training rows kept (5 folds: fold 0 scores a fifth)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  %(message)s")
    logging.getLogger("pipeline.tuning").setLevel(logging.INFO)  # one line per trial
    with tempfile.TemporaryDirectory() as folder:
        rows = [sweep(pruner, args, folder) for pruner in ("median", "none")]
    pruned, full = rows
    print(table(["pruner", "trials complete", "pruned", "epochs", "wall s", "best accuracy"],
                [[r["pruner"], r["complete"], r["pruned"], r["epochs"], round(r["seconds"]), r["best"]] for r in rows]))
    n_scored = args.rows // 5
    noise = math.sqrt(full["best"] * (1 - full["best"]) / n_scored)
    print(f"\npruning saved {1 - pruned['epochs'] / full['epochs']:.0%} of the epochs and "
          f"{1 - pruned['seconds'] / full['seconds']:.0%} of the time; best accuracy {pruned['best']:.4f} vs "
          f"{full['best']:.4f} (difference {pruned['best'] - full['best']:+.4f}; one standard error on "
          f"{n_scored} scored rows: {noise:.4f})")


if __name__ == "__main__":
    main()
