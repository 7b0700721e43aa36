"""Stage 2, train: K-fold training of one model, out-of-fold and test predictions.

For each fold: train on the other folds, keep the checkpoint with the best validation score,
predict the fold's rows (out-of-fold) and the test set. The test prediction is the mean of the
folds' models. Writes oof.parquet, test.parquet, metrics.json, history.csv, config.yaml,
provenance.json and plots/ (learning curves, confusion matrix, per-class scores or residuals).

An interrupted run (Ctrl-C, a kill, a crash) resumes when the same config runs again: folds it
finished are kept and the fold it was in continues from its last epoch's checkpoint
(pipeline/training/checkpoints.py); the predictions equal an uninterrupted run's.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import lightning.pytorch as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, open_dict

from pipeline import io, progress
from pipeline.models import family_module
from pipeline.training.augment import build_augment
from pipeline.training.callbacks import EpochLogger, FiniteLoss, Reseed
from pipeline.training.checkpoints import AtomicCheckpointIO, FoldResult, FoldState
from pipeline.training.inputs import fold_inputs
from pipeline.training.module import CompetitionModule
from pipeline.training.tta import build_tta
from pipeline.config.compose import check_model_fits
from pipeline.errors import PodiumError
from pipeline.metrics import get_metric, report_scores, score_predictions
from pipeline.predictions import Predictions, n_outputs
from pipeline.plots import model_plots
from pipeline.prepare import PreparedData, load_prepared
from pipeline.provenance import provenance
from pipeline.tracking import Tracker, config_hash

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


def _quiet_lightning() -> None:
    # Data are decoded arrays in memory: worker processes only add start-up cost on CPU.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning 2.6 calls a torch pytree helper that torch 2.13 deprecates; harmless, once per process.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    # Podium's own SortedBatchSampler returns every index once (tests check that predictions are complete).
    warnings.filterwarnings("ignore", ".*custom batch sampler `SortedBatchSampler` for prediction.*")
    # A resumed fold's folder holds its earlier checkpoints, on purpose.
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def fold_state(cfg: DictConfig, fold: int) -> FoldState:
    """The fold's checkpoint folder: one per config (by hash), so experiments never share checkpoints."""
    comp = cfg.competition
    return FoldState(io.root(cfg) / cfg.paths.checkpoints / comp.name / cfg.model.name / config_hash(cfg) / f"fold_{fold}")


def train_fold(cfg: DictConfig, data: PreparedData, fold: int, tracker: Tracker, history: list[dict],
               callbacks: Sequence[L.Callback] = (), predict_test: bool = True, label: str | None = None) -> FoldResult:
    """Train one fold (resuming an interrupted one when `train.resume`); its validation and test predictions.

    `callbacks` join the trainer's own (a sweep's pruning callback); `label` names the fold in
    messages ("cnn seed 1 fold 2"; default "<model> fold <k>").
    """
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    label = label or f"{cfg.model.name} fold {fold}"
    L.seed_everything(cfg.seed + fold, workers=True, verbose=False)
    is_valid = data.train["fold"].to_numpy() == fold
    state = fold_state(cfg, fold)
    checkpoint = ModelCheckpoint(dirpath=state.folder, filename="best", monitor="val/score",
                                 mode="max" if metric.direction == "maximize" else "min", save_top_k=1,
                                 save_last=True, enable_version_counter=False)
    trainer_flags = {k: v for k, v in cfg.trainer.items() if v is not None}
    own = [checkpoint, EpochLogger(tracker, fold, history, state.save_history), FiniteLoss(label), Reseed(cfg.seed + fold),
           *([progress.epoch_bar(label)] if cfg.trainer.enable_progress_bar else [])]
    trainer = L.Trainer(**trainer_flags, logger=False, callbacks=[*own, *callbacks], plugins=[AtomicCheckpointIO()],
                        enable_model_summary=False, num_sanity_val_steps=0)
    if trainer.world_size > 1:
        # Under DDP each rank predicts a padded shard; gathering them by id is not built yet, and
        # naive concatenation would duplicate out-of-fold rows. Refuse rather than write wrong files.
        raise PodiumError(
            f"Training on {trainer.world_size} processes (trainer.strategy={cfg.trainer.strategy}, "
            f"devices={cfg.trainer.devices}) is not supported yet: out-of-fold predictions would not be "
            f"gathered by id. Use one device (trainer.devices=1)."
        )
    resume_at = state.resumable_epoch() if cfg.train.resume else None
    if resume_at is None:
        state.clear()  # only once the run is going ahead
    else:
        log.info("%s: resuming at epoch %d from %s", label, resume_at, state.last)
        _restore_history(state.history(before_epoch=resume_at), history, tracker)  # the epochs already trained
    inputs = fold_inputs(cfg, data, is_valid)
    augment = build_augment(cfg.augment) if comp.modality == "image" else None
    tta = build_tta(cfg.tta, comp.modality, comp.task)
    module = CompetitionModule(inputs.net, cfg.model, comp.task, metric, augment, tta)
    try:
        trainer.fit(module, inputs.train_loader(cfg, seed=cfg.seed + fold), inputs.eval_loader(inputs.valid, cfg)[0],
                    ckpt_path=state.last if resume_at is not None else None)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1); keep it a Ctrl-C
            raise KeyboardInterrupt from None
        raise
    inputs.save_tokenizer(state.folder)

    def predict(dataset):
        loader, order = inputs.eval_loader(dataset, cfg)
        batches = trainer.predict(module, loader, ckpt_path=checkpoint.best_model_path)
        out = np.empty((len(dataset), batches[0].shape[1]))
        out[order] = np.concatenate([b.numpy() for b in batches])
        return out

    scores = [(h["val/score"], h["epoch"]) for h in history if h["fold"] == fold]
    pick = max if metric.direction == "maximize" else min
    best_epoch = pick(scores, key=lambda s: s[0])[1]  # first best epoch, as the checkpoint kept
    result = FoldResult(predict(inputs.valid), predict(inputs.test) if predict_test else None, best_epoch)
    state.save_result(result)
    return result


def _restore_history(rows: list[dict], history: list[dict], tracker: Tracker) -> None:
    """Epochs an interrupted run trained: into the history table and the (new) fold run's curves."""
    for row in rows:
        history.append(row)
        tracker.log_metrics({k.replace("/", "_"): v for k, v in row.items() if "/" in k}, step=row["epoch"])


def fit_fold(cfg: DictConfig, data: PreparedData, fold: int) -> FoldResult:
    """One fold of a family that is not a network (`fit_predict`, e.g. TF-IDF + logistic regression)."""
    column = cfg.competition.text.column
    is_valid = data.train["fold"].to_numpy() == fold
    texts, target = data.train[column].to_numpy(), data.train["target"].to_numpy()
    valid_pred, test_pred = family_module(cfg.model.family).fit_predict(
        cfg.model, cfg.competition.task, list(texts[~is_valid]), target[~is_valid],
        [list(texts[is_valid]), data.test[column].tolist()], seed=cfg.seed + fold)
    return FoldResult(valid_pred, test_pred, None)


def train_seed(cfg: DictConfig, data: PreparedData, tracker: Tracker, history: list[dict], label: str,
               only_folds: Sequence[int] | None = None, callbacks: Callable[[int], list] | None = None,
               predict_test: bool = True) -> tuple[np.ndarray, np.ndarray, list[float], list]:
    """Every fold of one seed (`cfg.seed`): out-of-fold and fold-averaged test predictions, fold scores, best epochs.

    A sweep trial trains `only_folds` (rows of other folds stay zero), adds `callbacks(k)` to the
    k-th fold it trains, and skips the test predictions.
    """
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    family = family_module(cfg.model.family)
    folds = data.train["fold"].to_numpy()
    n_folds = int(folds.max()) + 1
    target = data.train["target"].to_numpy()
    oof = np.zeros((len(data.train), n_outputs(comp)))
    test = np.zeros((len(data.test), n_outputs(comp)))
    fold_scores, best_epochs = [], []
    for index, fold in enumerate(only_folds if only_folds is not None else range(n_folds)):
        fold_started = time.perf_counter()
        with tracker.run(f"{label} fold {fold}", nested=True, model=cfg.model.name, fold=str(fold), seed=str(cfg.seed), stage="train_fold"):
            state = fold_state(cfg, fold)
            kept = state.finished() if cfg.train.resume and not hasattr(family, "fit_predict") else None
            if kept is not None:  # finished by an interrupted run of this config
                log.info("%s fold %d: finished by an earlier run, kept (%s)", label, fold, state.folder)
                _restore_history(state.history(before_epoch=cfg.trainer.max_epochs), history, tracker)
                tracker.set_tags(resumed="kept")
                result = kept
            elif hasattr(family, "fit_predict"):
                result = fit_fold(cfg, data, fold)
            else:
                result = train_fold(cfg, data, fold, tracker, history, callbacks(index) if callbacks else (), predict_test,
                                    label=f"{label} fold {fold}")
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
            score = score_predictions(metric, target[is_valid], valid_pred, comp.task)
            tracker.log_metrics({f"fold_{metric.name}": score, **({"best_epoch": best_epoch} if best_epoch is not None else {})})
        fold_scores.append(score)
        best_epochs.append(best_epoch)
        progress.advance("folds")
        log.info("%s fold %d (%d of %d): %s %.4f (best epoch %s) in %.0f s", label, fold, index + 1,
                 len(only_folds) if only_folds is not None else n_folds, metric.name, score,
                 best_epoch if best_epoch is not None else "-", time.perf_counter() - fold_started)
    return oof, test, fold_scores, best_epochs


def preflight(cfg: DictConfig) -> None:
    """Refuse what would fail mid-training (a model of the wrong modality, a bad TTA view, ...) before any work."""
    check_model_fits(cfg)
    family = family_module(cfg.model.family)
    if hasattr(family, "check"):  # family-specific refusals (a missing model folder, ...)
        family.check(cfg.model, io.root(cfg))
    build_tta(cfg.tta, cfg.competition.modality, cfg.competition.task)
    _quiet_lightning()


def train(cfg: DictConfig) -> TrainResult:
    """Train the configured model on every fold (once per seed); write its predictions and scores to `out_dir`.

    With several `train.seeds`, the model's predictions are the mean over seeds, and each seed's
    own predictions are kept in `seeds/seed_<s>/` (the ensemble can use them as separate members).
    """
    preflight(cfg)
    if cfg.train.tuned_from:
        log.info("with the tuned parameters of %s", cfg.train.tuned_from)
    started = time.perf_counter()
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    seeds = list(cfg.train.seeds) if cfg.train.seeds else [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise PodiumError(f"train.seeds={seeds} repeats a seed: each seed would train the same model twice. List distinct seeds.")
    out = io.out_dir(cfg)
    tracker = Tracker(cfg)
    data = load_prepared(cfg, scratch=out / "prepared")
    folds, target = data.train["fold"].to_numpy(), data.train["target"].to_numpy()
    ids, test_ids = data.train[comp.id_column].to_numpy(), data.test[comp.id_column].to_numpy()
    history: list[dict] = []
    per_seed: dict[int, dict] = {}
    written: list[Path] = []

    n_folds = int(folds.max()) + 1
    with (tracker.run(f"{cfg.model.name}", params=True, model=cfg.model.name, stage="train") as run_id,
          progress.bar(f"{cfg.model.name}: folds", total=len(seeds) * n_folds, name="folds")):
        for seed in seeds:
            seed_cfg = _with_seed(cfg, seed)
            label = cfg.model.name if len(seeds) == 1 else f"{cfg.model.name} seed {seed}"
            seed_history: list[dict] = []
            seed_started = time.perf_counter()
            oof, test, fold_scores, best_epochs = train_seed(seed_cfg, data, tracker, seed_history, label)
            history += [{"seed": seed, **row} for row in seed_history]
            cv = score_predictions(metric, target, oof, comp.task)
            per_seed[seed] = {"oof": oof, "test": test, "cv": cv, "best_epochs": best_epochs}
            if len(seeds) > 1:
                log.info("%s: CV %s %.4f", label, metric.name, cv)
            seed_dir = out / "seeds" / f"seed_{seed}"
            written += Predictions(ids, folds, target, oof, test_ids, test).save(seed_dir, comp)
            io.write_json(seed_dir / "metrics.json", {"model": cfg.model.name, "seed": seed, "metric": metric.name, "cv": cv,
                                                      "folds": {str(k): s for k, s in enumerate(fold_scores)},
                                                      "seconds": round(time.perf_counter() - seed_started, 1)})

        # The model's own predictions: the mean over seeds (one seed: that seed's).
        oof = np.mean([p["oof"] for p in per_seed.values()], axis=0)
        test = np.mean([p["test"] for p in per_seed.values()], axis=0)
        fold_scores = [score_predictions(metric, target[folds == k], oof[folds == k], comp.task) for k in range(n_folds)]
        cv_score = score_predictions(metric, target, oof, comp.task)
        reported = report_scores(comp, target, oof)
        seconds = time.perf_counter() - started
        best_epochs = [e for p in per_seed.values() for e in p["best_epochs"]]
        result = TrainResult(cfg.model.name, metric.name, cv_score, fold_scores, seconds, out, run_id, best_epochs)
        written += Predictions(ids, folds, target, oof, test_ids, test).save(out, comp)
        metrics = {"model": cfg.model.name, "metric": metric.name, "cv": cv_score,
                   "folds": {str(k): s for k, s in enumerate(fold_scores)},
                   "fold_mean": float(np.mean(fold_scores)), "fold_std": float(np.std(fold_scores)),
                   "report": reported, "seeds": {str(s): p["cv"] for s, p in per_seed.items()},
                   "best_epochs": best_epochs, "seconds": round(seconds, 1)}
        io.write_csv(out / "history.csv", pd.DataFrame(history))
        plots = model_plots(out / "plots", pd.DataFrame(history), target, oof, comp, metric.name, cfg.model.name)
        io.write_config(out / "config.yaml", cfg)
        io.write_json(out / "metrics.json", metrics)
        record = provenance(io.root(cfg), {"raw": io.raw_dir(cfg), "prepared": data.folder})
        io.write_json(out / "provenance.json", record)
        tracker.log_provenance(record)
        tracker.log_metrics({f"cv_{metric.name}": cv_score, **{f"cv_{k}": v for k, v in reported.items()},
                             **({f"cv_{metric.name}_seed_{s}": p["cv"] for s, p in per_seed.items()} if len(seeds) > 1 else {}),
                             "fold_std": metrics["fold_std"], "seconds": seconds})
        tracker.log_artifacts([*written, out / "history.csv", out / "config.yaml", out / "metrics.json"])
        tracker.log_artifacts(plots, folder="plots")
        tracker.describe(f"{cfg.model.name} on {comp.name}: CV {metric.name} {cv_score:.4f} (fold std {metrics['fold_std']:.4f}) "
                         f"over {n_folds} folds x {len(seeds)} seed(s), in {seconds:.0f} s.")
    if not hasattr(family_module(cfg.model.family), "fit_predict"):
        for seed in seeds:  # complete: nothing left to resume; the next run of this config trains afresh
            for fold in range(n_folds):
                fold_state(_with_seed(cfg, seed), fold).finish()
    return result


def _with_seed(cfg: DictConfig, seed: int) -> DictConfig:
    """A copy of `cfg` whose `seed` is `seed` (it seeds initialisation, data order and the checkpoint folder)."""
    copy = cfg.copy()
    with open_dict(copy):
        copy.seed = seed
    return copy
