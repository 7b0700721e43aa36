"""Stage 2, train: K-fold training of one model, out-of-fold and test predictions.

For each fold (pipeline/training/fold.py): train on the other folds, keep the checkpoint with
the best validation score, predict the fold's rows (out-of-fold) and the test set. The test
prediction is the mean of the folds' models. Writes oof.parquet, test.parquet, metrics.json,
history.csv, config.yaml, provenance.json, plots/ (learning curves, confusion matrix, per-class
scores or residuals) and fitted/, every fold's fitted model (pipeline/inference/fitted.py).

An interrupted run (Ctrl-C, a kill, a crash) resumes when the same config runs again: folds it
finished are kept and the fold it was in continues from its last epoch's checkpoint
(pipeline/training/checkpoints.py); the predictions equal an uninterrupted run's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline import io, progress
from pipeline.config.compose import check_model_fits
from pipeline.data.prepared import PreparedData
from pipeline.errors import PodiumError
from pipeline.inference.fitted import ESTIMATOR, export_fitted
from pipeline.metrics import get_metric, report_scores, score_predictions
from pipeline.models import family
from pipeline.models.gbdt import mean_gain
from pipeline.models.targets import import_target
from pipeline.plots import feature_importance, model_plots
from pipeline.predictions import Predictions, file_hashes
from pipeline.provenance import provenance
from pipeline.tracking import Tracker
from pipeline.training import distributed
from pipeline.training.data_choices import DataChoices, choose_from_data
from pipeline.training.fold import fit_fold, restore_history, train_fold, undefined_score
from pipeline.training.module import build_loss, check_loss
from pipeline.training.probe import probe_network
from pipeline.training.quiet import quiet_lightning
from pipeline.training.spec import FoldSpec, trainer_flags
from pipeline.training.threads import set_threads
from pipeline.training.tta import build_tta

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: str
    metric: str
    cv_score: float  # the metric on all out-of-fold predictions together
    fold_scores: list[float]
    seconds: float
    out_dir: Path
    run_id: str | None = None
    best_epochs: list[int | None] = field(default_factory=list)  # None: not trained by epochs


def train_seed(
    spec: FoldSpec,
    data: PreparedData,
    tracker: Tracker,
    history: list[dict],
    label: str,
    only_folds: Sequence[int] | None = None,
    callbacks: Callable[[int], list] | None = None,
    predict_test: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[float], list]:
    """Every fold of one seed (`spec.seed`): out-of-fold and fold-averaged test predictions, fold scores, best epochs.

    A sweep trial trains `only_folds` (rows of other folds stay zero), adds `callbacks(k)` to the
    k-th fold it trains, and skips the test predictions.
    """
    metric, estimator = spec.metric, spec.kind == "estimator"
    folds = data.train["fold"].to_numpy()
    n_folds = int(folds.max()) + 1
    target = data.train["target"].to_numpy()
    oof = np.zeros((len(data.train), spec.n_outputs))
    test = np.zeros((len(data.test), spec.n_outputs))
    fold_scores, best_epochs = [], []
    for index, fold in enumerate(only_folds if only_folds is not None else range(n_folds)):
        fold_started = time.perf_counter()
        with tracker.run(
            f"{label} fold {fold}",
            nested=True,
            model=spec.name,
            fold=str(fold),
            seed=str(spec.seed),
            stage="train_fold",
        ):
            state = spec.fold_state(fold)
            reusable = spec.resume and not estimator and state.same_data(data.identity, f"{label} fold {fold}")
            kept = state.finished() if reusable else None
            if kept is not None:  # finished by an interrupted run of this config
                log.info("%s fold %d: finished by an earlier run, kept (%s)", label, fold, state.folder)
                restore_history(state.history(before_epoch=spec.trainer.get("max_epochs")), history, tracker)
                tracker.set_tags(resumed="kept")
                result = kept
            elif estimator:
                # a sweep's trials keep nothing; the boosted trees report to its pruner every few rounds
                result = fit_fold(spec, data, fold, keep=predict_test, callbacks=callbacks(index) if callbacks else ())
            else:
                result = train_fold(
                    spec,
                    data,
                    fold,
                    tracker,
                    history,
                    callbacks(index) if callbacks else (),
                    predict_test,
                    label=f"{label} fold {fold}",
                )
            valid_pred, best_epoch = result.valid, result.best_epoch
            test_pred = result.test if predict_test else np.zeros_like(test)
            if not (np.isfinite(valid_pred).all() and np.isfinite(test_pred).all()):
                raise PodiumError(
                    f"{label} fold {fold} diverged: its predictions contain NaN or infinity, so no "
                    f"outputs were written. Lower model.optimizer.lr or set trainer.gradient_clip_val."
                )
            is_valid = folds == fold
            oof[is_valid] = valid_pred
            test += test_pred / n_folds
            score = score_predictions(metric, target[is_valid], valid_pred, spec.task)
            if not np.isfinite(score):
                raise PodiumError(undefined_score(f"{label} fold {fold}", spec, target[is_valid]))
            tracker.log_metrics(
                {f"fold_{metric.name}": score, **({"best_epoch": best_epoch} if best_epoch is not None else {})}
            )
        fold_scores.append(score)
        best_epochs.append(best_epoch)
        progress.advance("folds")
        log.info(
            "%s fold %d (%d of %d): %s %.4f (best epoch %s) in %.0f s",
            label,
            fold,
            index + 1,
            len(only_folds) if only_folds is not None else n_folds,
            metric.name,
            score,
            best_epoch if best_epoch is not None else "-",
            time.perf_counter() - fold_started,
        )
    return oof, test, fold_scores, best_epochs


def preflight(cfg: DictConfig) -> None:
    """Refuse what would fail mid-training (a model of the wrong modality, a bad TTA view, ...) before any work."""
    check_model_fits(cfg)
    record = family(cfg.model.family)
    if record.kind == "network" and not (cfg.model.optimizer or {}).get("_target_"):
        raise PodiumError(
            f"Invalid configuration: model.optimizer has no _target_, and a network trains with one. Set it in "
            f"conf/model/{cfg.model.name}.yaml, e.g. optimizer: {{_target_: torch.optim.AdamW, lr: 1.0e-3}}."
        )
    builders = record.builders()
    if record.kind == "estimator" and not hasattr(builders, "fit"):
        raise PodiumError(
            f"The estimator family {record.name!r} ({record.module}) has no fit(model, fold): an estimator family "
            f"returns its fitted estimator from fit, and Podium predicts with it (the protocol of "
            f"pipeline/models/__init__.py; fit_predict was its earlier form). Update that module."
        )
    if hasattr(builders, "check"):  # family-specific refusals (a missing model folder, a class that does not import)
        builders.check(cfg.model, cfg.competition.task, io.root(cfg))
    if cfg.model.get("loss"):  # the user's loss imports, fits the task and builds before any work
        where, loss = f"conf/model/{cfg.model.name}.yaml", OmegaConf.to_container(cfg.model.loss)
        import_target(loss.get("_target_"), "model.loss", where, io.root(cfg))  # a project module resolves
        check_loss(loss, cfg.competition.task, where)
        build_loss(loss)
    build_tta(cfg.tta, cfg.competition.modality, cfg.competition.task)
    quiet_lightning()


def train(cfg: DictConfig) -> TrainResult | None:
    """Train the configured model on every fold (once per seed); write its predictions and scores to `out_dir`.

    With several `train.seeds`, the model's predictions are the mean over seeds, and each seed's
    own predictions are kept in `seeds/seed_<s>/` (the ensemble can use them as separate members).
    Under DDP every process runs this; global rank 0 alone writes files and MLflow runs, and
    alone returns the result (the others return None).
    """
    preflight(cfg)
    world = distributed.start(trainer_flags(cfg))
    set_threads(cfg.data.num_threads, max(1, world.size // int(cfg.trainer.num_nodes)))
    if cfg.train.tuned_from:
        log.info("with the tuned parameters of %s", cfg.train.tuned_from)
    if world.size > 1:
        log.info(
            "training on %d processes (trainer.devices=%s, trainer.num_nodes=%s); model.batch_size=%d is split "
            "into %d per process",
            world.size,
            cfg.trainer.devices,
            cfg.trainer.num_nodes,
            cfg.model.batch_size,
            cfg.model.batch_size // world.size,
        )
    started = time.perf_counter()
    seeds = list(cfg.train.seeds) if cfg.train.seeds else [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise PodiumError(
            f"train.seeds={seeds} repeats a seed: each seed would train the same model twice. List distinct seeds."
        )
    out = io.out_dir(cfg)
    tracker = Tracker.of(cfg, enabled=world.is_main)
    data = distributed.load_data(cfg, out / "prepared", world)
    choices = choose_from_data(cfg, data, say=log.info if world.is_main else log.debug)  # model.* auto, resolved
    spec = FoldSpec.of(cfg)  # what every fold reads, once
    if data.image_files is not None and cfg.data.num_workers == 0 and world.is_main:
        log.info(
            "images are streamed from their files and decoded in the training process (data.num_workers=0): "
            "data.num_workers=2 or more decodes them beside the training"
        )
    if _estimates(cfg, spec, world):
        from pipeline.training.estimate import describe, estimate_cost, fit_budget, timer

        cost = estimate_cost(spec, data, len(seeds))
        log.info(describe(cfg.model.name, cost))
        if cfg.train.budget_minutes is not None:
            changed = fit_budget(cfg, cost, cfg.train.budget_minutes, retime=timer(cfg, data, len(seeds)))
            if changed:
                spec = FoldSpec.of(cfg)  # the budget's max_length and epochs
                choices.made.update(changed)
                choices.reasons.update({k: f"train.budget_minutes={cfg.train.budget_minutes:g}" for k in changed})
    probe_network(spec, data)  # the user's network: its output checked before any fold trains
    n_folds = int(data.train["fold"].max()) + 1
    with (
        tracker.run(f"{cfg.model.name}", params=True, model=cfg.model.name, stage="train") as run_id,
        progress.bar(f"{cfg.model.name}: folds", total=len(seeds) * n_folds, name="folds"),
    ):
        per_seed, history = {}, []
        for seed in seeds:
            label = cfg.model.name if len(seeds) == 1 else f"{cfg.model.name} seed {seed}"
            seed_history: list[dict] = []
            seed_started = time.perf_counter()
            oof, test, fold_scores, best_epochs = train_seed(spec.with_seed(seed), data, tracker, seed_history, label)
            history += [{"seed": seed, **row} for row in seed_history]
            per_seed[seed] = {
                "oof": oof,
                "test": test,
                "fold_scores": fold_scores,
                "best_epochs": best_epochs,
                "seconds": time.perf_counter() - seed_started,
            }
        result = (
            _write_outputs(cfg, spec, data, per_seed, history, tracker, out, run_id, started, choices)
            if world.is_main
            else None
        )
    if world.is_main and spec.kind == "network":
        for seed in seeds:  # complete: nothing left to resume; the next run of this config trains afresh
            for fold in range(n_folds):
                spec.with_seed(seed).fold_state(fold).finish()
    return result


def _estimates(cfg: DictConfig, spec: FoldSpec, world: distributed.World) -> bool:
    """Whether this run times a few batches first: a network, with train.estimate or a budget, in one process."""
    if cfg.train.budget_minutes is not None and world.size > 1:
        raise PodiumError(
            f"train.budget_minutes={cfg.train.budget_minutes:g} with {world.size} training processes: the estimate "
            f"the budget is held to times one process. Drop train.budget_minutes, or fit the budget with one "
            f"process first and pass the max_length and epochs it prints."
        )
    return spec.kind == "network" and world.size == 1 and (cfg.train.estimate or cfg.train.budget_minutes is not None)


def _write_outputs(
    cfg: DictConfig,
    spec: FoldSpec,
    data: PreparedData,
    per_seed: dict[int, dict],
    history: list[dict],
    tracker: Tracker,
    out: Path,
    run_id: str | None,
    started: float,
    choices: DataChoices,
) -> TrainResult:
    """Predictions, scores, history, plots, config and provenance of a finished training, to files and MLflow."""
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    folds, target = data.train["fold"].to_numpy(), data.train["target"].to_numpy()
    ids, test_ids = data.train[comp.id_column].to_numpy(), data.test[comp.id_column].to_numpy()
    n_folds = int(folds.max()) + 1
    # Every file into a staging folder swapped in as one unit: a kill leaves the old outputs or the new.
    with io.staging_dir(out, keep=("prepared",)) as tmp:  # by-hand runs keep their scratch prepared data
        for seed, run in per_seed.items():
            run["cv"] = score_predictions(metric, target, run["oof"], comp.task)
            if len(per_seed) > 1:
                log.info("%s seed %d: CV %s %.4f", cfg.model.name, seed, metric.name, run["cv"])
            seed_dir = tmp / "seeds" / f"seed_{seed}"
            files = Predictions(ids, folds, target, run["oof"], test_ids, run["test"]).save(seed_dir, comp)
            io.write_json(
                seed_dir / "metrics.json",
                {
                    "model": cfg.model.name,
                    "seed": seed,
                    "metric": metric.name,
                    "cv": run["cv"],
                    "folds": {str(k): s for k, s in enumerate(run["fold_scores"])},
                    "seconds": round(run["seconds"], 1),
                    "files": file_hashes(files),
                },
            )

        # The model's own predictions: the mean over seeds (one seed: that seed's).
        oof = np.mean([p["oof"] for p in per_seed.values()], axis=0)
        test = np.mean([p["test"] for p in per_seed.values()], axis=0)
        fold_scores = [
            score_predictions(metric, target[folds == k], oof[folds == k], comp.task) for k in range(n_folds)
        ]
        cv_score = score_predictions(metric, target, oof, comp.task)
        reported = report_scores(comp, target, oof)
        seconds = time.perf_counter() - started
        best_epochs = [e for p in per_seed.values() for e in p["best_epochs"]]
        files = Predictions(ids, folds, target, oof, test_ids, test).save(tmp, comp)
        metrics = {
            "model": cfg.model.name,
            "metric": metric.name,
            "cv": cv_score,
            "folds": {str(k): s for k, s in enumerate(fold_scores)},
            "fold_mean": float(np.mean(fold_scores)),
            "fold_std": float(np.std(fold_scores)),
            "report": reported,
            "seeds": {str(s): p["cv"] for s, p in per_seed.items()},
            "best_epochs": best_epochs,
            "seconds": round(seconds, 1),
            "files": file_hashes(files),
            "chosen_from_data": {k: {"value": v, "why": choices.reasons[k]} for k, v in choices.made.items()},
        }
        io.write_csv(tmp / "history.csv", pd.DataFrame(history))
        plots = [
            p.relative_to(tmp)
            for p in model_plots(tmp / "plots", pd.DataFrame(history), target, oof, comp, metric.name, cfg.model.name)
        ]
        io.write_config(tmp / "config.yaml", cfg)
        io.write_json(tmp / "metrics.json", metrics)
        export_fitted(  # what `podium predict` and `podium bundle` run the model with
            lambda seed, fold: spec.with_seed(seed).fold_state(fold).folder,
            list(per_seed),
            n_folds,
            spec.kind,
            {
                "model": cfg.model.name,
                "family": cfg.model.family,
                **({"features": data.features.schema.to_json()} if data.features is not None else {}),
            },
            tmp / "fitted",
            getattr(family(cfg.model.family).builders(), "FILES", (ESTIMATOR,)),
        )
        gain = mean_gain(tmp / "fitted")  # gradient-boosted trees: each feature's gain, mean over folds
        if gain is not None:
            io.write_csv(
                tmp / "plots" / "feature_importance.csv", gain.rename("gain").rename_axis("feature").reset_index()
            )
            title = f"{cfg.model.name}: feature importance"
            plots.append(feature_importance(gain, title, tmp / "plots" / "feature_importance.png").relative_to(tmp))
            plots.append(Path("plots/feature_importance.csv"))
        record = provenance(io.root(cfg), {"raw": io.raw_dir(cfg), "prepared": data.folder})
        io.write_json(tmp / "provenance.json", record)
    written = [out / "oof.parquet", out / "test.parquet", *sorted((out / "seeds").glob("seed_*/*.parquet"))]
    tracker.log_provenance(record)
    tracker.log_metrics(
        {
            f"cv_{metric.name}": cv_score,
            **{f"cv_{k}": v for k, v in reported.items()},
            **({f"cv_{metric.name}_seed_{s}": p["cv"] for s, p in per_seed.items()} if len(per_seed) > 1 else {}),
            "fold_std": metrics["fold_std"],
            "seconds": seconds,
        }
    )
    tracker.log_artifacts([*written, out / "history.csv", out / "config.yaml", out / "metrics.json"])
    tracker.log_artifacts([out / p for p in plots], folder="plots")
    tracker.describe(
        f"{cfg.model.name} on {comp.name}: CV {metric.name} {cv_score:.4f} (fold std {metrics['fold_std']:.4f}) "
        f"over {n_folds} folds x {len(per_seed)} seed(s), in {seconds:.0f} s."
    )
    return TrainResult(cfg.model.name, metric.name, cv_score, fold_scores, seconds, out, run_id, best_epochs)
