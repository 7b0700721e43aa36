"""Podium's Lightning callbacks: divergence check, per-epoch records, and per-batch reseeding."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import lightning.pytorch as L
import numpy as np
import torch

from pipeline.errors import PodiumError
from pipeline.tracking import Tracker

log = logging.getLogger(__name__)


class FiniteLoss(L.Callback):
    """Stop at the first non-finite training loss, with a message, instead of training on NaN."""

    def __init__(self, label: str):
        self.label = label  # "cnn fold 0"

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        diverged = loss is not None and not bool(torch.isfinite(loss).all())
        if trainer.world_size > 1:
            # Every process must stop at the same batch: one stopping alone would leave the others
            # waiting for it in the next gradient exchange.
            diverged = trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            raise PodiumError(
                f"{self.label}: the training loss became {_shown(loss)} at epoch {trainer.current_epoch}, batch {batch_idx}: "
                f"the run diverged. Lower model.optimizer.lr or set model.gradient_clip_val."
            )


def _shown(loss) -> str:
    """The loss in the divergence message; under DDP it may be another process's that broke."""
    value = float(loss) if loss is not None else float("nan")
    return f"{value}" if not np.isfinite(value) else "NaN or infinite (on another training process)"


class EpochLogger(L.Callback):
    """Per-epoch metrics to MLflow's active (fold) run, to the run's history table and, through
    `on_epoch`, to the fold's saved state (so a resumed fold keeps its earlier epochs; written by
    global rank 0 only)."""

    def __init__(
        self, tracker: Tracker, fold: int, history: list[dict], on_epoch: Callable[[list[dict]], None] | None = None
    ):
        self.tracker, self.fold, self.history, self.on_epoch = tracker, fold, history, on_epoch

    # Lightning validates inside the training epoch, so at its end the epoch's metrics are all in.
    def on_train_epoch_end(self, trainer, module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.history.append({"fold": self.fold, "epoch": trainer.current_epoch, **metrics})
        self.tracker.log_metrics({k.replace("/", "_"): v for k, v in metrics.items()}, step=trainer.current_epoch)
        if self.on_epoch and trainer.is_global_zero:
            self.on_epoch([row for row in self.history if row["fold"] == self.fold])


class EpochLines(L.Callback):
    """One log line per epoch when no progress bars are drawn (output to a file or a pipe, as `dvc repro`
    is usually run): epoch, losses, validation score, its seconds and the fold's estimated time left."""

    def __init__(self, label: str, metric: str):
        self.label, self.metric, self.started, self.seconds = label, metric, 0.0, []

    def on_train_epoch_start(self, trainer, module):
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        from pipeline import progress

        if progress.is_live() or not trainer.is_global_zero:
            return
        self.seconds.append(time.perf_counter() - self.started)
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs
        m = trainer.callback_metrics
        shown = "  ".join(
            f"{name} {float(m[key]):.4f}"
            for name, key in (("loss", "train/loss"), ("val loss", "val/loss"), (f"val {self.metric}", "val/score"))
            if key in m
        )
        left = (total - epoch) * sum(self.seconds) / len(self.seconds) if total and total > 0 else None
        log.info(
            "%s epoch %d/%s  %s  %.0f s%s",
            self.label,
            epoch,
            total if total and total > 0 else "?",
            shown,
            self.seconds[-1],
            f"  (fold: about {left:.0f} s left)" if left else "",
        )


class Reseed(L.Callback):
    """Seed the global random generators (dropout, augmentation) from (seed, epoch, batch) before
    every training batch.

    The randomness of a batch then depends on where it is in training, not on what ran before
    in the process, so a fold resumed from its epoch-e checkpoint draws what the uninterrupted
    run drew, and its predictions come out identical. The data order is seeded the same way, by
    epoch (`SeededShuffle`).
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        state = np.random.SeedSequence([self.seed, trainer.current_epoch, batch_idx]).generate_state(2)
        # torch.manual_seed's own way costs 80 us a call on a machine without CUDA initialised (it
        # records a stack trace for each lazy device seeding): seed the generators in use directly.
        torch.default_generator.manual_seed(int(state[0]))
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(int(state[0]))
        np.random.seed(int(state[1]))
        random.seed(int(state[1]))
