"""Gradient-boosted trees on ames: each family's CV against default LightGBM, and Podium's cost per fold.

    .venv/bin/python benchmarks/tabular.py [--families lightgbm xgboost catboost] [--repeats 2]

In a scratch project built by competitions/ames/build.py and prepared as the pipeline prepares
it (5 folds, log1p of the price), each family's fold runs two ways with the parameters of its
conf/model/<name>.yaml: through Podium (`fit_fold`: the fold's rows taken from the typed table,
the family's fit with early stopping, the validation and test predictions) and by calling the
library directly on the same rows with the same arguments. The fold times are the median of
`--repeats` runs; the ratio is Podium's over the library's. The baseline is LightGBM's
`LGBMRegressor()` with every parameter at its default (100 trees, no early stopping) on the same
folds.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("lightgbm", "xgboost", "catboost")


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def direct(name: str, model, X, y, Xv, yv, Xt, threads: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The library called as its documentation shows, with the YAML's parameters: validation and test predictions."""
    params = dict(model.params)
    if name == "lightgbm":
        import lightgbm

        est = lightgbm.LGBMRegressor(n_estimators=model.n_estimators, learning_rate=model.learning_rate,
                                     random_state=seed, n_jobs=threads, deterministic=True, force_row_wise=True,
                                     verbosity=-1, **params)  # fmt: skip
        est.fit(X, y, eval_X=(Xv,), eval_y=(yv,), eval_metric="rmse",
                callbacks=[lightgbm.early_stopping(model.early_stopping_rounds, verbose=False)])  # fmt: skip
        return est.predict(Xv), est.predict(Xt)
    if name == "xgboost":
        import xgboost

        est = xgboost.XGBRegressor(n_estimators=model.n_estimators, learning_rate=model.learning_rate,
                                   random_state=seed, n_jobs=threads, tree_method="hist", enable_categorical=True,
                                   eval_metric="rmse", early_stopping_rounds=model.early_stopping_rounds, **params)  # fmt: skip
        est.fit(X, y, eval_set=[(Xv, yv)], verbose=False)
        return est.predict(Xv), est.predict(Xt)
    import catboost
    import pandas as pd

    def strings(frame):
        frame = frame.copy()
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype(object).where(frame[c].notna(), "<missing>").astype(str)
        return frame

    cat = [i for i, d in enumerate(X.dtypes) if isinstance(d, pd.CategoricalDtype)]
    est = catboost.CatBoostRegressor(iterations=model.n_estimators, learning_rate=model.learning_rate,
                                     random_seed=seed, thread_count=threads, eval_metric="RMSE",
                                     early_stopping_rounds=model.early_stopping_rounds, allow_writing_files=False,
                                     verbose=False, **params)  # fmt: skip
    est.fit(strings(X), y, cat_features=cat, eval_set=(strings(Xv), yv), use_best_model=True)
    return est.predict(strings(Xv)), est.predict(strings(Xt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import lightgbm

    from pipeline.config import compose
    from pipeline.prepare import load_prepared
    from pipeline.report import table
    from pipeline.training.fold import fit_fold
    from pipeline.training.spec import FoldSpec
    from pipeline.training.threads import available_cores

    with tempfile.TemporaryDirectory(prefix="podium-tabular-") as scratch:
        project = Path(scratch)
        shutil.copytree(ROOT / "conf", project / "conf")
        build = ROOT / "competitions" / "ames" / "build.py"
        subprocess.run([sys.executable, str(build), "--out", str(project / "data" / "ames")], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        base = ["competition=ames", "tracking=none"]
        data = load_prepared(compose([*base, "model=lightgbm"], root=project), project / "prepared")
        X, Xt = data.features.train, data.features.test
        y, folds = data.train["target"].to_numpy(np.float64), data.train["fold"].to_numpy()
        n_folds, threads = int(folds.max()) + 1, available_cores()

        def take(frame, mask):
            return frame.iloc[np.flatnonzero(mask)].reset_index(drop=True)

        oof = np.zeros(len(y))
        for k in range(n_folds):  # the baseline: every parameter at LightGBM's default
            v = folds == k
            est = lightgbm.LGBMRegressor(random_state=0, n_jobs=threads, verbosity=-1).fit(take(X, ~v), y[~v])
            oof[v] = est.predict(take(X, v))
        rows = [["lightgbm, defaults", f"{rmse(oof, y):.4f}", "", "", ""]]

        for name in args.families:
            cfg = compose([*base, f"model={name}"], root=project)
            spec = FoldSpec.of(cfg)
            ours, theirs, oof = [], [], np.zeros(len(y))
            for k in range(n_folds):
                v = folds == k
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    result = fit_fold(spec, data, k, keep=False)
                    ours.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    direct(name, cfg.model, take(X, ~v), y[~v], take(X, v), y[v], Xt, threads, spec.seed + k)
                    theirs.append(time.perf_counter() - started)
                oof[v] = result.valid[:, 0]
            a, b = statistics.median(ours), statistics.median(theirs)
            rows.append([name, f"{rmse(oof, y):.4f}", f"{a:.2f}", f"{b:.2f}", f"{a / b:.3f}x"])
            print(f"{name}: done", file=sys.stderr)
        print(f"ames: {len(y)} training rows, {X.shape[1]} features, {n_folds} folds, {threads} threads; "
              f"CV RMSE of log1p(price)")  # fmt: skip
        print(table(["model", "CV rmse", "Podium s/fold", "library s/fold", "ratio"], rows))


if __name__ == "__main__":
    main()
