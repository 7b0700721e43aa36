"""The ensemble's fitted blend, kept so new rows are blended as the test set was.

The ensemble stage writes `blend/` into its output folder:

    blend/blend.json        the method, the members in blend order (each a model folder and its seeds)
                            and the weights (every method but stack blends by weights)
    blend/meta_model.skops  stack only: the fitted meta-model
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import io
from pipeline.errors import PodiumError
from pipeline.inference.fitted import FORMAT, load_estimator, save_estimator

META_MODEL = "meta_model.skops"


@dataclass(frozen=True)
class Member:
    """One blend input: a trained model's folder (relative to the project or bundle root) and the seeds it averages."""

    name: str
    folder: str
    seeds: list[int] | None  # None: every seed the model trained (the model's own mean)


def member_of(name: str, folder: Path, root: Path) -> Member:
    """The member an ensemble candidate folder is: a model folder, or one seed of it (`<model>/seeds/seed_<s>`)."""
    seed = None
    if folder.parent.name == "seeds" and folder.name.startswith("seed_"):
        seed, folder = [int(folder.name.removeprefix("seed_"))], folder.parent.parent
    relative = folder.relative_to(root) if folder.is_relative_to(root) else folder
    return Member(name, str(relative), seed)


def save_blend(blend, members: list[Member], folder: Path, targets: set[str]) -> None:
    """The fitted blend (pipeline/ensemble/methods.py) and its members into `folder` (`targets`: the
    `_target_`s of the ensemble config, which a stack's meta-model may use)."""
    meta = getattr(blend, "model", None)
    if meta is not None:
        save_estimator(folder, meta, targets, "the ensemble's stack", META_MODEL)
    weights = getattr(blend, "weights", None)
    io.write_json(
        folder / "blend.json",
        {
            "format": FORMAT,
            "method": blend.name,
            "members": [vars(m) for m in members],
            "weights": None if weights is None else [float(w) for w in np.asarray(weights)],
        },
    )


def _saved(folder: Path) -> dict:
    path = folder / "blend.json"
    if not path.is_file():
        raise PodiumError(
            f"{path} is missing: the ensemble was made before Podium kept its fitted blend. Rerun it "
            f"(`dvc repro`, or `podium ensemble`), then predict."
        )
    saved = json.loads(path.read_text())
    if saved.get("format") != FORMAT:
        raise PodiumError(
            f"{path} is of fitted-state format {saved.get('format')}, and this Podium reads format {FORMAT}. "
            f"Rerun the ensemble with this Podium."
        )
    return saved


def load_blend_members(folder: Path) -> list[Member]:
    """The members of the blend saved in `folder`, in blend order."""
    return [Member(**m) for m in _saved(folder)["members"]]


def load_blend(folder: Path, problem, targets: set[str]):
    """The blend saved in `folder`, ready to `apply`, and its members."""
    from pipeline.ensemble.methods import make_blend

    saved = _saved(folder)
    blend = make_blend(saved["method"], problem)
    if saved["weights"] is not None:
        blend.weights = np.asarray(saved["weights"], dtype=np.float64)
    if saved["method"] == "stack":
        blend.model = load_estimator(folder / META_MODEL, targets)
    return blend, load_blend_members(folder)
