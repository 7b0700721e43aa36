"""Optuna sweeps over the search spaces of conf/tune/: `podium tune` (see stage.py)."""

from pipeline.tuning.stage import TuneResult, tune

__all__ = ["TuneResult", "tune"]
