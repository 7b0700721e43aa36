"""The fold spec: what every fold of one training needs, read from the whole config once by the stage.

`train` and `tune` build it (`FoldSpec.of(cfg)`); the fold-level code (fold.py, inputs.py, the
probe, checkpoints) takes it and nothing else, so what a fold reads is written down here, typed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from pipeline import io
from pipeline.metrics import get_metric
from pipeline.models import family
from pipeline.models.targets import project_files
from pipeline.predictions import n_logits, n_outputs
from pipeline.training.checkpoints import FoldState
from pipeline.training.reads import resume_key

if TYPE_CHECKING:
    from pipeline.metrics import Metric


@dataclass(frozen=True)
class FoldSpec:
    name: str  # the model's name (conf/model/<name>.yaml), in messages and folders
    model: DictConfig  # the model section: family settings, optimizer, scheduler, loss
    kind: str  # the family's kind: network (Lightning) | estimator (fit / predict)
    competition: str
    task: str  # binary | multiclass | regression
    modality: str  # image | text
    classes: tuple[str, ...]
    metric: Metric
    n_outputs: int  # prediction columns
    n_logits: int  # network outputs (one for a binary task)
    text_column: str | None  # text competitions: the column of the texts
    seed: int  # seeds initialisation and data order (fold k uses seed + k)
    trainer: dict  # lightning.pytorch.Trainer arguments (unset ones left to Lightning)
    progress_bar: bool
    loading: DictConfig  # the `data` section: DataLoader workers and memory pinning
    augment: DictConfig | None  # image competitions: the training transforms
    image: DictConfig | None  # image competitions: competition.image (the network's input size, fit and store)
    tta: DictConfig  # test-time augmentation views
    channels_last: bool
    compile: bool
    resume: bool  # reuse an interrupted run's folds (train.resume)
    root: Path  # the project root
    cache: Path  # tokenized texts, reused across runs
    checkpoints: Path  # this training's checkpoint folder: one per resume key and per content of the user's code

    @classmethod
    def of(cls, cfg: DictConfig) -> FoldSpec:
        """The spec of the configured training (for `cfg.seed`)."""
        comp, root = cfg.competition, io.root(cfg)
        key = resume_key(cfg)
        own = project_files(cfg.model, root)
        if own:  # an edited network never resumes from the old one's folds
            key += "-" + hashlib.sha256(b"".join((root / f).read_bytes() for f in own)).hexdigest()[:8]
        return cls(
            name=cfg.model.name,
            model=cfg.model,
            kind=family(cfg.model.family).kind,
            competition=comp.name,
            task=comp.task,
            modality=comp.modality,
            classes=tuple(comp.classes),
            metric=get_metric(comp.metric),
            n_outputs=n_outputs(comp),
            n_logits=n_logits(comp),
            text_column=comp.text.column if comp.modality == "text" else None,
            seed=int(cfg.seed),
            trainer=trainer_flags(cfg),
            progress_bar=bool(cfg.trainer.enable_progress_bar),
            loading=cfg.data,
            augment=cfg.augment if comp.modality == "image" else None,
            image=comp.image if comp.modality == "image" else None,
            tta=cfg.tta,
            channels_last=bool(cfg.train.channels_last),
            compile=bool(cfg.train.compile),
            resume=bool(cfg.train.resume),
            root=root,
            cache=root / cfg.paths.cache,
            checkpoints=root / cfg.paths.checkpoints / comp.name / cfg.model.name / key,
        )

    def with_seed(self, seed: int) -> FoldSpec:
        """The same training under another seed."""
        return dataclasses.replace(self, seed=seed)

    def fold_state(self, fold: int) -> FoldState:
        """The saved state of fold `fold` for this spec's seed."""
        return FoldState(self.checkpoints / f"seed_{self.seed}" / f"fold_{fold}")

    def label(self, fold: int | None = None) -> str:
        """How messages name the model (and a fold): "cnn fold 2"."""
        return self.name if fold is None else f"{self.name} fold {fold}"

    @property
    def where(self) -> str:
        """The file that configures the model, for messages."""
        return f"conf/model/{self.name}.yaml"


def trainer_flags(cfg: DictConfig) -> dict:
    """The `trainer` section as lightning.pytorch.Trainer arguments (unset ones left to Lightning)."""
    return {k: v for k, v in cfg.trainer.items() if v is not None}
