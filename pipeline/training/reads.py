"""What a training reads from the config: one definition for its resume key and its DVC params.

A fold's saved state is reused only by a run that would train the same thing (the resume key
hashes these sections), and `dvc repro` reruns a model's stage exactly when one of the files that
set them changes (pipeline/dvc_files.py lists them as the stage's params). Both come from the
tables below, so they cannot disagree: editing an ensemble, sweep, tracking or submission setting
neither restarts an interrupted training nor reruns a trained one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

# Sections of conf/config.yaml a training reads (the stage also depends on its `defaults` list,
# which picks the groups below). Keyed ones change what is trained; the others say only where
# files go or how loading runs, so editing them leaves an interrupted fold resumable.
ROOT_SECTIONS = {"seed": False, "train": True, "data": False, "paths": False}  # name -> part of the resume key
# Config groups a training reads whole, each from conf/<group>/<choice>.yaml.
GROUPS = ("model", "trainer", "augment", "tta")
IMAGE_ONLY_GROUPS = ("augment", "tta")
# Keys of `train` that never change what a fold trains: whether to resume, which seeds run (each
# seed has its own checkpoint folder), the estimate, and the budget (what it changes is in `model`).
UNKEYED_TRAIN = ("resume", "seeds", "tuned", "tuned_from", "estimate", "budget_minutes")
# Keys of the competition file a training does not read: the ensemble's members, the submission's
# format and the raw files (`prepare` reads those; its output, a dependency of every training,
# covers them). Its `overrides:` and `seeds:` act through the sections above.
COMPETITION_UNREAD = ("models", "submission", "files")
COMPETITION_UNKEYED = ("overrides", "seeds")


def groups(modality: str) -> tuple[str, ...]:
    """The config groups a training of this modality reads."""
    return tuple(g for g in GROUPS if modality == "image" or g not in IMAGE_ONLY_GROUPS)


def competition_keys(comp: Mapping) -> list[str]:
    """Top-level keys of a competition's file that its trainings read (those it sets: DVC refuses absent ones)."""
    return [k for k, v in comp.items() if k not in (*COMPETITION_UNREAD, "defaults") and v not in (None, [], {})]


def resume_key(cfg: DictConfig) -> str:
    """Hash of what a fold's training depends on, less the seed (the checkpoint folder names it):
    equal keys mean a saved fold of one run is valid for the other."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    keyed = {
        "competition": {
            k: v for k, v in plain["competition"].items() if k not in (*COMPETITION_UNREAD, *COMPETITION_UNKEYED)
        },
        **{g: plain.get(g) for g in groups(cfg.competition.modality)},
        **{k: plain.get(k) for k, keyed in ROOT_SECTIONS.items() if keyed},
    }
    keyed["train"] = {k: v for k, v in (keyed["train"] or {}).items() if k not in UNKEYED_TRAIN}
    model = keyed.get("model") or {}
    # keys an `auto` was resolved for count as `auto`: the same config on the same data resolves them alike
    # (pipeline/training/data_choices.py), and the fold's saved state is checked against the data's identity
    for key in model.pop("chosen_from_data", None) or []:
        model[key] = "auto"
    text = OmegaConf.to_yaml(OmegaConf.create(keyed))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
