"""Stage 3, ensemble: blending methods, their honest (nested) scores, and the stage itself."""

from pipeline.ensemble.selection import candidate_scorer, hill_climb_weights
from pipeline.ensemble.stage import EnsembleResult, ensemble

__all__ = ["EnsembleResult", "candidate_scorer", "ensemble", "hill_climb_weights"]
