"""The ensemble's fitted blend, kept so new rows are blended as the test set was.

The ensemble stage writes `blend/` into its output folder:

    blend/blend.json        the method, the members in blend order (each a model folder and its seeds),
                            the weights (every method but stack blends by weights) and a digest of
                            each member's fitted state, so a member retrained since is refused
    blend/meta_model.skops  stack only: the fitted meta-model
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import io
from pipeline.errors import PodiumError
from pipeline.inference.fitted import FORMAT, load_estimator, read_record, read_state, save_estimator

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


def fitted_digest(model_folder: Path) -> str:
    """One SHA-256 of a model's fitted state: every file under its `fitted/`, by relative path and content."""
    from pipeline.data.identity import file_sha256

    fitted, digest = model_folder / "fitted", hashlib.sha256()
    for path in sorted(p for p in fitted.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(fitted).as_posix()}\0{file_sha256(path)}\0".encode())
    return digest.hexdigest()


def save_blend(blend, members: list[Member], folder: Path, targets: set[str], root: Path) -> None:
    """The fitted blend (pipeline/ensemble/methods.py) and its members (folders relative to `root`) into
    `folder` (`targets`: the `_target_`s of the ensemble config, which a stack's meta-model may use)."""
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
            "fitted": {m.folder: fitted_digest(root / m.folder) for m in members},
            "weights": None if weights is None else [float(w) for w in np.asarray(weights)],
        },
    )


def _saved(folder: Path) -> dict:
    path = folder / "blend.json"
    return read_state(
        path,
        f"{path} is missing: the ensemble was made before Podium kept its fitted blend. Rerun it "
        f"(`dvc repro`, or `podium ensemble`), then predict.",
        "Rerun the ensemble with this Podium (`dvc repro`, or `podium ensemble`).",
    )


def load_blend_members(folder: Path, root: Path) -> list[Member]:
    """The members of the blend saved in `folder`, in blend order, each as fitted when the blend was (folders
    relative to `root`): a member retrained since would be blended with weights fitted to other predictions."""
    saved = _saved(folder)
    members = [Member(**m) for m in saved["members"]]
    if "fitted" not in saved:
        raise PodiumError(
            f"{folder / 'blend.json'} was written before Podium recorded the fitted state of the members it "
            f"blends, so a member retrained since could not be told. Rerun the ensemble (`dvc repro`, or "
            f"`podium ensemble`), then predict or bundle again."
        )
    for member in members:
        read_record(root / member.folder)  # a member without fitted models is refused as such first
        if saved["fitted"].get(member.folder) != fitted_digest(root / member.folder):
            raise PodiumError(
                f"Member {member.name} ({root / member.folder / 'fitted'}) is not the model the ensemble in "
                f"{folder.parent} was fitted with: it was retrained (or removed) after the ensemble ran, so its "
                f"blend weights belong to other predictions and nothing was predicted. Rerun the ensemble (`dvc "
                f"repro`, or `podium ensemble`), then predict or bundle again."
            )
    return members


def load_blend(folder: Path, problem, targets: set[str], root: Path):
    """The blend saved in `folder`, ready to `apply`, and its members (`load_blend_members`)."""
    from pipeline.ensemble.methods import BLENDS, make_blend

    saved = _saved(folder)
    if saved.get("method") not in BLENDS:
        raise PodiumError(
            f"{folder / 'blend.json'} names the blend method {saved.get('method')!r}, which this Podium does not "
            f"know ({', '.join(BLENDS)}). Rerun the ensemble with this Podium."
        )
    blend = make_blend(saved["method"], problem)
    if saved["weights"] is not None:
        blend.weights = np.asarray(saved["weights"], dtype=np.float64)
    if saved["method"] == "stack":
        blend.model = load_estimator(folder / META_MODEL, targets)
    return blend, load_blend_members(folder, root)
