"""Lightning's notices and the warnings known to be harmless here, silenced once per process."""

from __future__ import annotations

import logging
import warnings


def quiet_lightning() -> None:
    """Lightning's start-up notices and the warnings known to be harmless here, off (training and `podium predict`)."""
    # Data are decoded arrays in memory: worker processes only add start-up cost on CPU.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning 2.6 calls a torch pytree helper that torch 2.13 deprecates; harmless, once per process.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    # Podium's own EvalBatches returns every index once (gather_rows checks that predictions are complete).
    warnings.filterwarnings("ignore", ".*custom batch sampler `EvalBatches` for prediction.*")
    # A resumed fold's folder holds its earlier checkpoints, on purpose.
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
