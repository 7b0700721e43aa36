"""One sweep trial: the trial's config, K folds trained with per-epoch pruning, one MLflow run."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from pipeline.config import compose
from pipeline.config.tuned import to_overrides
from pipeline.data.prepared import PreparedData
from pipeline.errors import PodiumError
from pipeline.metrics import get_metric, score_predictions
from pipeline.tracking import Tracker
from pipeline.training import distributed
from pipeline.training.data_choices import choose_from_data
from pipeline.training.distributed import World
from pipeline.training.spec import FoldSpec
from pipeline.training.train import train_seed
from pipeline.tuning.pruning import FoldSteps, Pruning, fold_steps
from pipeline.tuning.reclaim import record_worker
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
    world: World = World()  # under DDP: rank 0 runs the study, the other processes `follow` it


def run_trial(trial: optuna.Trial, ctx: TrialContext) -> float:
    """Train the trial's parameters on `ctx.folds`; return the metric on those folds' out-of-fold rows.

    Raises optuna.TrialPruned when the pruner stops it, and any error (recorded as the trial's
    `fail_reason`) when it fails; the sweep records either and goes on. The trial first records
    its worker's host and pid: if the worker dies, a rerun on that host reclaims it at once.
    """
    record_worker(trial)
    scratch = ctx.scratch / f"trial_{trial.number}"
    tracker = ctx.tracker
    reported: list[int] = []
    try:
        with tracker.run(
            f"trial {trial.number}",
            nested=True,
            parent=ctx.parent_run,
            stage="tune_trial",
            model=ctx.model,
            study=ctx.study_name,
            trial=str(trial.number),
        ):
            try:
                params = ctx.space.sample(trial)
                tracker.log_params(params)
                distributed.broadcast_object((trial.number, params))  # the other DDP processes train it too
                value = _evaluate(trial, _trial_config(ctx, trial.number, params), ctx, reported)
            except optuna.TrialPruned:
                tracker.set_tags(state="PRUNED", pruned_step=reported[-1])
                raise
            except Exception as exc:
                reason = _reason(exc)
                trial.set_user_attr("fail_reason", reason[:2000])
                tracker.set_tags(state="FAIL", fail_reason=reason[:5000])
                raise
            tracker.log_metrics({"value": value})
            tracker.set_tags(state="COMPLETE")
        return value
    except optuna.TrialPruned:
        raise
    except Exception as exc:
        # failed outside the training (opening or closing the tracker's run): still a finished trial,
        # with its reason; without one it would not count toward tune.n_trials and the sweep go on for ever
        if "fail_reason" not in trial.user_attrs:
            trial.set_user_attr("fail_reason", _reason(exc)[:2000])
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, PodiumError) else f"{type(exc).__name__}: {exc}"


def follow(ctx: TrialContext) -> None:
    """A DDP process other than rank 0: train every trial rank 0 announces, until it announces None."""
    while (announced := distributed.broadcast_object(None)) is not None:
        number, params = announced
        try:
            _evaluate(None, _trial_config(ctx, number, params), ctx, [], number)
        except Exception:  # pruned or failed: rank 0 records it, from its own identical run
            pass


def _trial_config(ctx: TrialContext, number: int, params: dict):
    """The trial's config: the sweep's overrides under its parameters, checkpoints in its scratch folder."""
    return compose(
        [
            *ctx.overrides,
            *to_overrides(params, ctx.groups),
            f"paths.checkpoints={ctx.scratch / f'trial_{number}'}",
            "train.resume=false",
        ],
        root=ctx.root,
    )


def _evaluate(
    trial: optuna.Trial | None, cfg, ctx: TrialContext, reported: list[int], number: int | None = None
) -> float:
    """Train and score the trial's folds; `trial` is None on the processes that follow rank 0."""
    metric, comp = get_metric(cfg.competition.metric), cfg.competition
    number = trial.number if trial is not None else number
    epochs = fold_steps(cfg)  # a network's epochs, or a boosted model's rounds (reported every few)
    final = len(ctx.folds) * epochs - 1
    pruning = lambda k: [Pruning(FoldSteps(trial, k * epochs, final, reported) if trial is not None else None)]  # noqa: E731
    tracker = ctx.tracker
    choose_from_data(cfg, ctx.data, say=log.debug)  # the trial's model.* auto, as the stage chose them
    oof, _, fold_scores, _ = train_seed(
        FoldSpec.of(cfg),
        ctx.data,
        tracker,
        [],
        f"trial {number}",
        only_folds=ctx.folds,
        callbacks=pruning,
        predict_test=False,
    )
    rows = np.isin(ctx.data.train["fold"].to_numpy(), ctx.folds)
    value = score_predictions(metric, ctx.data.train["target"].to_numpy()[rows], oof[rows], comp.task)
    if not np.isfinite(value):
        raise PodiumError(f"The trial's {metric.name} is {value}: its predictions cannot be scored.")
    tracker.log_metrics({f"fold_{k}_{metric.name}": s for k, s in zip(ctx.folds, fold_scores)})
    return float(value)
