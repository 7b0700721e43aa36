"""Pruning a trial from inside training, in one process or several (DDP).

`Pruning` reports the validation score to the trial after each epoch and stops the fit when the
pruner says so; for the gradient-boosted trees, which train in one call, it reports every
`gbdt.REPORT_EVERY` boosting rounds through the library's own per-iteration callback
(`report_iteration`). Under DDP rank 0 alone talks to Optuna and broadcasts its decision, so every
process stops at the same epoch; after `fit`, `check_pruned()` raises optuna.TrialPruned on each
of them (raising inside `fit` would make Lightning kill the other processes). It needs nothing
of the storage, so it works with SQLite, a database server or a journal file alike.
"""

from __future__ import annotations

import lightning.pytorch as L
import optuna


def fold_steps(cfg) -> int:
    """Steps a fold can report to the pruner: its epochs, or an estimator family's most boosting rounds."""
    from pipeline.models import family

    if family(cfg.model.family).kind == "estimator":
        return int(cfg.model.get("n_estimators") or 1)
    return int(cfg.trainer.max_epochs)


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


class Pruning(L.Callback):
    """Report `monitor` after each validation; stop the fit (every process) when the trial should be pruned.

    `steps` is the trial (as FoldSteps) on rank 0, None on the other processes of a DDP run.
    """

    def __init__(self, steps: FoldSteps | None, monitor: str = "val/score"):
        self.steps, self.monitor = steps, monitor
        self.pruned_at: int | None = None  # the epoch the pruner stopped, once it has

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero and self.steps is not None:
            score = trainer.callback_metrics.get(self.monitor)
            if score is not None:
                self.steps.report(float(score), trainer.current_epoch)
                prune = self.steps.should_prune()
        if trainer.strategy.broadcast(prune):  # rank 0's decision, on every process
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True

    def report_iteration(self, iteration: int, value: float) -> bool:
        """A boosting round's validation value (an estimator family's fit, one process): whether to stop it."""
        if self.steps is None:
            return False
        self.steps.report(value, iteration)
        if self.steps.should_prune():
            self.pruned_at = iteration
            return True
        return False

    def check_pruned(self) -> None:
        """Raise optuna.TrialPruned if the pruner stopped this fit (call after `fit`)."""
        if self.pruned_at is not None:
            raise optuna.TrialPruned(f"Trial was pruned at step {self.pruned_at}.")
