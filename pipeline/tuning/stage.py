"""`podium tune`: an Optuna study over a model's search space, handed over to training.

    podium tune competition=animals model=cnn tune.n_trials=40 --workers 2

The study `<competition>-<model>-<tune.name>` lives in `tune.storage` (SQLite by default), so the
same command resumes it and workers on several machines can share it. Each trial trains the
first `tune.folds` folds with per-epoch pruning; MLflow gets a run per study with a nested run
per trial. At the end the best parameters go to competitions/<competition>/tuned/<model>.yaml,
which training applies by default (pipeline/config/tuned.py).

Under DDP (`trainer=ddp`, torchrun, SLURM) every process runs this command: rank 0 runs the
study and announces each trial's parameters, the others train it with rank 0 (`follow`).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import io
from pipeline.config import compose
from pipeline.config.compose import find_root
from pipeline.config.tuned import tuned_file, write_tuned
from pipeline.errors import PodiumError
from pipeline.prepare import load_prepared
from pipeline.tracking import Tracker
from pipeline.training import distributed
from pipeline.training.data_choices import choose_from_data
from pipeline.training.probe import probe_network
from pipeline.training.spec import FoldSpec, trainer_flags
from pipeline.training.train import preflight
from pipeline.tuning.plots import write_plots
from pipeline.tuning.progress import counts, top_trials
from pipeline.tuning.reclaim import listing
from pipeline.tuning.storage import storage_url
from pipeline.tuning.study import (
    Plan,
    finished_count,
    follow_study,
    make_plan,
    open_study,
    quiet_optuna,
    run_worker,
    running,
    scratch_dir,
)

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    study: str
    storage: str  # without any password
    metric: str
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    counts: dict[str, int]  # trials by state: complete, pruned, fail, running, waiting
    seconds: float  # this invocation's wall time
    top: tuple[list[str], list[list[Any]]]  # the best trials as (headers, rows)
    tuned_file: Path | None
    out_dir: Path


def tune(overrides: Sequence[str] = (), root: Path | None = None, workers: int | None = None) -> TuneResult | None:
    """Run (or resume) the study the overrides describe until it holds `tune.n_trials` trials.

    Under DDP, rank 0 returns the result and the other processes None.
    """
    started = time.perf_counter()
    root = Path(root or find_root())
    # Trials start from the plain config: a study must not change its objective when it writes a tuned file.
    base = ["train.tuned=false", *overrides, *([f"tune.n_workers={workers}"] if workers else [])]
    cfg = compose(base, root=root)
    preflight(cfg)
    quiet_optuna()
    if cfg.tune.n_workers < 1 or cfg.tune.n_trials < 1:
        raise PodiumError(
            f"tune.n_workers={cfg.tune.n_workers} and tune.n_trials={cfg.tune.n_trials} must both be at least 1."
        )
    world = distributed.start(trainer_flags(cfg))
    if world.size > 1 and cfg.tune.n_workers > 1:
        raise PodiumError(
            f"tune.n_workers={cfg.tune.n_workers} with {world.size} training processes per trial: a DDP "
            f"sweep runs one trial at a time on all of them. Drop --workers, or run several DDP sweeps "
            f"on the same tune.storage (each its own command) to try trials in parallel."
        )
    plan = make_plan(cfg, base)
    if not world.is_main:
        follow_study(root, plan, world)
        return None
    data = load_prepared(cfg, scratch=scratch_dir(cfg, plan) / "prepared")  # once, before workers start reading it
    choose_from_data(cfg, data)  # said once here; each trial resolves its own config the same way, quietly
    probe_network(FoldSpec.of(cfg), data)  # the user's network: checked on one batch before the study opens
    study = open_study(cfg, plan)
    _enqueue(study, cfg, plan)
    storage = io.redact(storage_url(cfg))
    log.info(
        "study %s in %s: %d trials on record; search space: %s",
        plan.study_name,
        storage,
        len(study.trials),
        ", ".join(p.key for p in plan.space.params),
    )

    tracker = Tracker.of(cfg)
    # the study's MLflow run, per tracking store (hashed: a server URI may carry a password)
    run_key = f"mlflow_run:{hashlib.sha256(cfg.tracking.uri.encode()).hexdigest()[:12]}"
    existing = study.user_attrs.get(run_key) if tracker.enabled else None
    if existing and not _run_exists(tracker, existing):
        existing = None
    out = io.out_dir(cfg)
    with tracker.run(
        plan.study_name,
        resume=existing,
        params=not existing,
        stage="tune",
        model=cfg.model.name,
        study=plan.study_name,
        storage=storage,
    ) as run_id:
        if run_id and not existing:
            study.set_user_attr(run_key, run_id)
        _run_workers(root, plan, cfg.tune.n_workers, run_id, world)
        distributed.broadcast_object(None)  # the study is done: the other DDP processes stop following
        _check_complete(cfg, plan, study)
        result = _summarize(cfg, plan, study, storage, out, started)
        tracker.log_metrics(
            {
                "best_value": result.best_value if result.best_value is not None else float("nan"),
                **{f"trials_{k}": v for k, v in result.counts.items()},
                "seconds": result.seconds,
            }
        )
        tracker.set_tags(
            **{f"best.{k}": v for k, v in result.best_params.items()},
            best_trial=result.best_trial if result.best_trial is not None else "none",
        )
        tracker.log_artifacts([p for p in out.glob("*") if p.is_file()])
        tracker.log_artifacts(sorted((out / "plots").glob("*.png")), folder="plots")
    if result.counts["complete"] == 0:
        failed = [t for t in study.trials if t.state.name == "FAIL"]
        reason = failed[0].user_attrs.get("fail_reason", "no reason recorded") if failed else "none finished"
        raise PodiumError(
            f"No trial of study {plan.study_name} completed ({result.counts}); the first failure: {reason}"
        )
    return result


def _enqueue(study, cfg, plan: Plan) -> None:
    """`tune.enqueue`: parameter sets tried first (once: a resumed study does not repeat them)."""
    keys = {p.key for p in plan.space.params}
    for params in cfg.tune.enqueue:
        unknown = set(params) - keys
        if unknown:
            raise PodiumError(
                f"tune.enqueue names {', '.join(sorted(unknown))}, not in the search space "
                f"({', '.join(sorted(keys))}). Fix the entry or add the parameter to conf/tune/{cfg.model.name}.yaml."
            )
        study.enqueue_trial(dict(params), skip_if_exists=True)


def _check_complete(cfg, plan: Plan, study) -> None:
    """The tuned file comes only from a study holding tune.n_trials finished trials (or stopped by tune.timeout)."""
    done = finished_count(study)
    if done >= cfg.tune.n_trials or cfg.tune.timeout is not None:
        return
    busy = running(study)
    still = f" Still running: {listing(busy)}." if busy else ""
    raise PodiumError(
        f"Study {plan.study_name} holds {done} of tune.n_trials={cfg.tune.n_trials} finished trials, so no tuned file "
        f"was written.{still} Run the same command again to continue: it waits for running trials, and fails and "
        f"retries one whose worker is gone (at once on that worker's host, after tune.grace_period="
        f"{cfg.tune.grace_period} s elsewhere)."
    )


def _run_exists(tracker: Tracker, run_id: str) -> bool:
    try:
        tracker.mlflow.get_run(run_id)
        return True
    except Exception:  # MlflowException: the store holds no such run (another machine's store)
        return False


def _run_workers(root: Path, plan: Plan, n_workers: int, parent_run: str | None, world: distributed.World) -> None:
    if n_workers == 1:
        run_worker(root, plan, 0, 1, parent_run, world)
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch or SQLite state
    level = logging.getLogger("pipeline").level
    procs = [
        context.Process(target=_worker_main, args=(root, plan, k, n_workers, parent_run, level), name=f"worker-{k}")
        for k in range(n_workers)
    ]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()
    broken = [f"worker {k} (exit code {p.exitcode})" for k, p in enumerate(procs) if p.exitcode != 0]
    if broken:
        raise PodiumError(
            f"{', '.join(broken)} stopped with an error (printed above). The study keeps every "
            f"finished trial: fix the cause and run the same command to continue."
        )


def _worker_main(root: Path, plan: Plan, worker: int, n_workers: int, parent_run: str | None, level: int) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"podium [worker {worker}]: %(message)s")
    logging.getLogger("pipeline").setLevel(level)
    try:
        run_worker(root, plan, worker, n_workers, parent_run)
    except PodiumError as exc:
        print(f"podium tune [worker {worker}]: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _summarize(cfg, plan: Plan, study, storage: str, out: Path, started: float) -> TuneResult:
    """The summary tables, trials.csv and plots in `out`, and the best parameters handed to training."""
    import optuna

    study = optuna.load_study(study_name=plan.study_name, storage=study._storage)  # every worker's trials
    by_state = counts(study)
    best = study.best_trial if by_state["complete"] else None
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    io.write_csv(out / "trials.csv", frame if len(frame) else pd.DataFrame())
    write_plots(study, out / "plots")
    path = None
    if best is not None and cfg.tune.write_best:
        path = tuned_file(plan.root, cfg.paths.competitions, cfg.competition.name, cfg.model.name)
        folds = f"folds {plan.folds[0]}-{plan.folds[-1]}" if len(plan.folds) > 1 else f"fold {plan.folds[0]}"
        header = (
            f"Best parameters of {cfg.model.name} on {cfg.competition.name}, written by `podium tune` "
            f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC).\n"
            f"`podium train` and `dvc repro` apply `overrides` by default; train.tuned=false ignores them,\n"
            f"and an override on the command line wins. Empty the mapping ({{}}) to train untuned."
        )
        record = {
            "study": plan.study_name,
            "storage": io.redact(cfg.tune.storage),
            "trial": best.number,
            "metric": cfg.competition.metric,
            "value": round(float(best.value), 6),
            "scored_on": folds,
        }
        write_tuned(path, best.params, header, record)
        io.write_text(out / "best_params.yaml", path.read_text())
    return TuneResult(
        plan.study_name,
        storage,
        cfg.competition.metric,
        best.value if best else None,
        best.number if best else None,
        dict(best.params) if best else {},
        by_state,
        time.perf_counter() - started,
        top_trials(study),
        path,
        out,
    )
