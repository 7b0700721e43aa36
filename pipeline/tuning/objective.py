"""One sweep trial: the trial's config, K folds trained with per-epoch pruning, one MLflow run."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna_integration import PyTorchLightningPruningCallback

from pipeline.config import compose
from pipeline.config.tuned import to_overrides
from pipeline.errors import PodiumError
from pipeline.metrics import get_metric, score_predictions
from pipeline.prepare import PreparedData
from pipeline.tracking import Tracker
from pipeline.training.train import train_seed
from pipeline.tuning.space import SearchSpace

log = logging.getLogger(__name__)


@dataclass
class TrialContext:
    """What a worker keeps across its trials."""

    root: Path
    overrides: list[str]  # the sweep's own (command line), applied under every trial's parameters
    groups: list[str]  # config groups: parameters with these names are `group=option` overrides
    space: SearchSpace
    data: PreparedData
    folds: list[int]  # the folds every trial trains and is scored on
    model: str
    study_name: str
    tracker: Tracker  # trials' runs nest under the study's run, their folds' under theirs
    parent_run: str | None  # the study's MLflow run
    scratch: Path  # trials' checkpoints, deleted after each trial


class FoldSteps:
    """The trial as the pruning callback sees it: epoch e of the k-th fold trained is step
    k * max_epochs + e, so later folds continue the learning curve instead of re-reporting
    fold 0's steps (which Optuna would ignore)."""

    def __init__(self, trial: optuna.Trial, offset: int, final: int, reported: list[int]):
        self._trial, self._offset, self._final = trial, offset, final
        self._reported = reported  # every step reported in this trial, shared across its folds

    def report(self, value: float, step: int) -> None:
        self._reported.append(self._offset + step)
        self._trial.report(value, self._reported[-1])

    def should_prune(self) -> bool:
        # Stopping at the last epoch of the last fold saves nothing and would discard a finished result.
        return self._reported[-1] < self._final and self._trial.should_prune()

    def __getattr__(self, name):
        return getattr(self._trial, name)


def run_trial(trial: optuna.Trial, ctx: TrialContext) -> float:
    """Train the trial's parameters on `ctx.folds`; return the metric on those folds' out-of-fold rows.

    Raises optuna.TrialPruned when the pruner stops it, and any error (recorded as the trial's
    `fail_reason`) when it fails; the sweep records either and goes on.
    """
    scratch = ctx.scratch / f"trial_{trial.number}"
    tracker = ctx.tracker
    reported: list[int] = []
    try:
        with tracker.run(f"trial {trial.number}", nested=True, parent=ctx.parent_run, stage="tune_trial",
                         model=ctx.model, study=ctx.study_name, trial=str(trial.number)):
            try:
                params = ctx.space.sample(trial)
                tracker.log_params(params)
                cfg = compose([*ctx.overrides, *to_overrides(params, ctx.groups), f"paths.checkpoints={scratch}", "train.resume=false"], root=ctx.root)
                value = _evaluate(trial, cfg, ctx, reported)
            except optuna.TrialPruned:
                tracker.set_tags(state="PRUNED", pruned_step=reported[-1])
                raise
            except Exception as exc:
                reason = str(exc) if isinstance(exc, PodiumError) else f"{type(exc).__name__}: {exc}"
                trial.set_user_attr("fail_reason", reason[:2000])
                tracker.set_tags(state="FAIL", fail_reason=reason[:5000])
                raise
            tracker.log_metrics({"value": value})
            tracker.set_tags(state="COMPLETE")
        return value
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _evaluate(trial: optuna.Trial, cfg, ctx: TrialContext, reported: list[int]) -> float:
    metric, comp = get_metric(cfg.competition.metric), cfg.competition
    epochs = int(cfg.trainer.max_epochs)
    final = len(ctx.folds) * epochs - 1
    pruning = lambda k: [PyTorchLightningPruningCallback(FoldSteps(trial, k * epochs, final, reported), monitor="val/score")]  # noqa: E731
    tracker = ctx.tracker
    oof, _, fold_scores, _ = train_seed(cfg, ctx.data, tracker, [], f"trial {trial.number}", only_folds=ctx.folds,
                                        callbacks=pruning, predict_test=False)
    rows = np.isin(ctx.data.train["fold"].to_numpy(), ctx.folds)
    value = score_predictions(metric, ctx.data.train["target"].to_numpy()[rows], oof[rows], comp.task)
    if not np.isfinite(value):
        raise PodiumError(f"The trial's {metric.name} is {value}: its predictions cannot be scored.")
    tracker.log_metrics({f"fold_{k}_{metric.name}": s for k, s in zip(ctx.folds, fold_scores)})
    return float(value)
