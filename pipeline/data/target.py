"""A regression target's transform (`competition.target.transform`): models learn and are scored on the
transformed values; the submission gets them back in the competition's units.

With `log1p` a model fits log(1 + y), its fold scores and the ensemble's are computed there (RMSE on
log1p is House Prices' metric), and the submission holds expm1 of the predictions.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PodiumError


def forward(values: np.ndarray, transform: str, where: str = "the target") -> np.ndarray:
    """`values` in the space models learn (the training target, a solution's truth, a submission's values)."""
    values = np.asarray(values, dtype=np.float64)
    if transform == "none":
        return values
    if transform == "log1p":
        bad = values <= -1
        if bad.any():
            raise PodiumError(
                f"{where} holds {int(bad.sum())} value(s) of -1 or less (e.g. {values[bad][:3].tolist()}), whose "
                f"log1p is undefined: competition.target.transform=log1p and the rmsle metric need values above -1. "
                f"Fix those rows, or choose another transform or metric in the competition's config."
            )
        return np.log1p(values)
    raise ValueError(f"unknown target transform {transform!r}")  # refused by config checks before this


def inverse(values: np.ndarray, transform: str) -> np.ndarray:
    """Predictions made in the transformed space, back in the competition's units (for the submission)."""
    values = np.asarray(values, dtype=np.float64)
    if transform == "none":
        return values
    if transform == "log1p":
        return np.expm1(values)
    raise ValueError(f"unknown target transform {transform!r}")


def of(comp) -> str:
    """The competition's transform ("none" for configs saved before the key existed)."""
    target = comp.get("target") if hasattr(comp, "get") else None
    return str(target.get("transform", "none")) if target else "none"
