"""The ensemble's candidates: trained models' predictions, checked to line up row for row.

A candidate is named after its folder under outputs/<competition>/models/ (`cnn`), a seed of a
model trained with several `train.seeds` (`cnn/seed_1`, with ensemble.seeds=separate), or any
other folder holding oof.parquet and test.parquet given by path (a sweep trial worth keeping).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline import io
from pipeline.errors import PodiumError
from pipeline.predictions import Predictions, load_predictions


def candidate_folders(cfg: DictConfig) -> dict[str, Path]:
    """Candidate name -> folder of its predictions, in the configured order."""
    comp = cfg.competition
    root = io.root(cfg)
    models_dir = root / cfg.paths.outputs / comp.name / "models"
    names = list(cfg.ensemble.members or comp.models)
    if not names:
        raise PodiumError(
            f"No models to ensemble: set `models:` in conf/competition/{comp.name}.yaml or ensemble.members=[a,b]."
        )
    folders: dict[str, Path] = {}
    for name in names:
        folder = models_dir / name
        if "/" in name and not folder.is_dir() and (root / name).is_dir():  # a folder given by path
            folder = root / name
        seed_dirs = sorted((folder / "seeds").glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
        if cfg.ensemble.seeds == "separate" and len(seed_dirs) > 1:
            folders.update({f"{name}/{d.name}": d for d in seed_dirs})
        else:
            folders[name] = folder
    return folders


def load_members(folders: dict[str, Path], comp: DictConfig) -> dict[str, Predictions]:
    """Every candidate's predictions (`candidate_folders`), checked to cover the same training and test ids and folds."""
    members = {name: load_predictions(folder, comp) for name, folder in folders.items()}
    first_name, first = next(iter(members.items()))
    for name, member in members.items():
        for what, a, b in (("training", member.oof_ids, first.oof_ids), ("test", member.test_ids, first.test_ids)):
            if not np.array_equal(a, b):
                raise PodiumError(
                    f"Members {first_name} and {name} predict different {what} ids: they were trained on "
                    f"different prepared data. Retrain both on the same competition config."
                )
        if not np.array_equal(member.folds, first.folds):
            raise PodiumError(
                f"Members {first_name} and {name} used different folds. Retrain both with the same cv settings."
            )
    return members
