"""Stage 2, train: K-fold training of one model, out-of-fold and test predictions.

For each fold: train on the other folds, keep the checkpoint with the best validation score,
predict the fold's rows (out-of-fold) and the test set. The test prediction is the mean of the
folds' models. Writes oof.parquet, test.parquet, metrics.json, history.csv and config.yaml.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import lightning.pytorch as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from pipeline import io
from pipeline.models import build_model
from pipeline.training.augment import build_augment
from pipeline.training.data import ImageArrayDataset, make_loader
from pipeline.training.module import CompetitionModule
from pipeline.errors import PodiumError
from pipeline.metrics import get_metric, score_predictions
from pipeline.predictions import Predictions, n_outputs
from pipeline.prepare import PreparedData, load_prepared
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
    best_epochs: list[int] = field(default_factory=list)


def _quiet_lightning() -> None:
    # Data are decoded arrays in memory: worker processes only add start-up cost on CPU.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning 2.6 calls a torch pytree helper that torch 2.13 deprecates; harmless, once per process.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


class EpochLogger(L.Callback):
    """Per-epoch metrics to MLflow's active (fold) run and to the run's history table."""

    def __init__(self, tracker: Tracker, fold: int, history: list[dict]):
        self.tracker, self.fold, self.history = tracker, fold, history

    # Lightning validates inside the training epoch, so at its end the epoch's metrics are all in.
    def on_train_epoch_end(self, trainer, module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.history.append({"fold": self.fold, "epoch": trainer.current_epoch, **metrics})
        self.tracker.log_metrics({k.replace("/", "_"): v for k, v in metrics.items()}, step=trainer.current_epoch)


def train_fold(cfg: DictConfig, data: PreparedData, fold: int, tracker: Tracker, history: list[dict]) -> tuple[np.ndarray, np.ndarray, int]:
    """Train one fold; returns (validation predictions, test predictions, best epoch)."""
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    L.seed_everything(cfg.seed + fold, workers=True, verbose=False)
    is_valid = data.train["fold"].to_numpy() == fold
    target = data.train["target"].to_numpy()
    images = np.array(data.train_images)  # into memory: a copy, off the read-only memory map
    train_set = ImageArrayDataset(images[~is_valid], target[~is_valid])
    valid_set = ImageArrayDataset(images[is_valid], target[is_valid])
    test_set = ImageArrayDataset(np.array(data.test_images))
    bs, workers = cfg.model.batch_size, cfg.data.num_workers
    channels, height, width = images.shape[1:]

    net = build_model(cfg.model, channels, height, width, n_outputs(comp))
    module = CompetitionModule(net, cfg.model, comp.task, metric, build_augment(cfg.augment))
    # One folder per config (by hash): experiments never share checkpoints; stale ones are cleared.
    checkpoint_dir = io.root(cfg) / cfg.paths.checkpoints / comp.name / cfg.model.name / config_hash(cfg) / f"fold_{fold}"
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, filename="best", monitor="val/score",
                                 mode="max" if metric.direction == "maximize" else "min", save_top_k=1,
                                 enable_version_counter=False)
    trainer_flags = {k: v for k, v in cfg.trainer.items() if v is not None}
    trainer = L.Trainer(**trainer_flags, logger=False, callbacks=[checkpoint, EpochLogger(tracker, fold, history)],
                        enable_model_summary=False, num_sanity_val_steps=0)
    if trainer.world_size > 1:
        # Under DDP each rank predicts a padded shard; gathering them by id is not built yet, and
        # naive concatenation would duplicate out-of-fold rows. Refuse rather than write wrong files.
        raise PodiumError(
            f"Training on {trainer.world_size} processes (trainer.strategy={cfg.trainer.strategy}, "
            f"devices={cfg.trainer.devices}) is not supported yet: out-of-fold predictions would not be "
            f"gathered by id. Use one device (trainer.devices=1)."
        )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # only once the run is going ahead
    trainer.fit(module, make_loader(train_set, bs, train=True, num_workers=workers, seed=cfg.seed + fold),
                make_loader(valid_set, bs, train=False, num_workers=workers, seed=0))

    def predict(dataset):
        batches = trainer.predict(module, make_loader(dataset, bs, train=False, num_workers=workers, seed=0),
                                  ckpt_path=checkpoint.best_model_path, weights_only=False)
        return np.concatenate([b.numpy() for b in batches])

    scores = [(h["val/score"], h["epoch"]) for h in history if h["fold"] == fold]
    pick = max if metric.direction == "maximize" else min
    best_epoch = pick(scores, key=lambda s: s[0])[1]  # first best epoch, as the checkpoint kept
    return predict(valid_set), predict(test_set), best_epoch


def train(cfg: DictConfig) -> TrainResult:
    """Train the configured model on every fold; write its predictions and scores to `out_dir`."""
    _quiet_lightning()
    started = time.perf_counter()
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    out = io.out_dir(cfg)
    tracker = Tracker(cfg)
    data = load_prepared(cfg, scratch=out / "prepared")
    n_folds = int(data.train["fold"].max()) + 1
    target = data.train["target"].to_numpy()
    oof = np.zeros((len(data.train), n_outputs(comp)))
    test = np.zeros((len(data.test), n_outputs(comp)))
    history: list[dict] = []
    fold_scores, best_epochs = [], []

    with tracker.run(f"{cfg.model.name}", params=True, model=cfg.model.name, stage="train") as run_id:
        for fold in range(n_folds):
            fold_started = time.perf_counter()
            with tracker.run(f"{cfg.model.name} fold {fold}", nested=True, model=cfg.model.name, fold=str(fold), stage="train_fold"):
                valid_pred, test_pred, best_epoch = train_fold(cfg, data, fold, tracker, history)
                if not (np.isfinite(valid_pred).all() and np.isfinite(test_pred).all()):
                    raise PodiumError(
                        f"{cfg.model.name} fold {fold} diverged: its predictions contain NaN or infinity, so no "
                        f"outputs were written. Lower model.optimizer.lr or set trainer.gradient_clip_val."
                    )
                is_valid = data.train["fold"].to_numpy() == fold
                oof[is_valid] = valid_pred
                test += test_pred / n_folds
                score = score_predictions(metric, target[is_valid], valid_pred, comp.task)
                tracker.log_metrics({f"fold_{metric.name}": score, "best_epoch": best_epoch})
            fold_scores.append(score)
            best_epochs.append(best_epoch)
            log.info("%s fold %d/%d: %s %.4f (best epoch %d) in %.0f s", cfg.model.name, fold + 1, n_folds,
                     metric.name, score, best_epoch, time.perf_counter() - fold_started)

        cv_score = score_predictions(metric, target, oof, comp.task)
        seconds = time.perf_counter() - started
        result = TrainResult(cfg.model.name, metric.name, cv_score, fold_scores, seconds, out, run_id, best_epochs)
        preds = Predictions(data.train[comp.id_column].to_numpy(), data.train["fold"].to_numpy(), target, oof,
                            data.test[comp.id_column].to_numpy(), test)
        written = preds.save(out, comp)
        metrics = {"model": cfg.model.name, "metric": metric.name, "cv": cv_score,
                   "folds": {str(k): s for k, s in enumerate(fold_scores)},
                   "fold_mean": float(np.mean(fold_scores)), "fold_std": float(np.std(fold_scores)),
                   "best_epochs": best_epochs, "seconds": round(seconds, 1)}
        io.write_csv(out / "history.csv", pd.DataFrame(history))
        io.write_config(out / "config.yaml", cfg)
        io.write_json(out / "metrics.json", metrics)
        tracker.log_metrics({f"cv_{metric.name}": cv_score, "fold_std": metrics["fold_std"], "seconds": seconds})
        tracker.log_artifacts([*written, out / "history.csv", out / "config.yaml", out / "metrics.json"])
    return result
