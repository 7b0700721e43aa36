"""A trained model rebuilt from its output folder, predicting new rows as training predicted the test set.

Each fold's network is rebuilt from the model's saved config (config.yaml) with its fitted weights,
wrapped in the same LightningModule (so the same test-time augmentation and precision apply) and
predicted through a Lightning Trainer; each fold's estimator is loaded from skops. The folds'
predictions are averaged per seed and the seeds' means averaged, as `train` averaged them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PodiumError
from pipeline.inference.fitted import ESTIMATOR, TOKENIZER, WEIGHTS, load_estimator, read_record

log = logging.getLogger(__name__)


@dataclass
class Rows:
    """A chunk of new rows: their texts (text competitions) or decoded images (uint8, N x C x H x W)."""

    texts: list[str] | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts) if self.texts is not None else len(self.images)


def saved_config(folder: Path, root: Path) -> DictConfig:
    """The resolved config a stage saved in `folder` (config.yaml), rooted at `root`."""
    path = folder / "config.yaml"
    if not path.is_file():
        raise PodiumError(
            f"{path} is missing: {folder} is not a complete Podium output. Rerun the stage that wrote it."
        )
    cfg = OmegaConf.load(path)
    cfg.paths.root = str(root)
    return cfg


def own_modules(section: Any) -> set[str]:
    """The top-level modules of every `_target_` in a config section: what skops may load besides scikit-learn."""
    found: set[str] = set()
    if isinstance(section, dict):
        target = section.get("_target_")
        if isinstance(target, str):
            found.add(target.split(".")[0])
        for value in section.values():
            found |= own_modules(value)
    elif isinstance(section, list):
        for value in section:
            found |= own_modules(value)
    return found


class FittedModel:
    """One trained model (all its folds, of `seeds` or of every seed it trained), ready to predict."""

    def __init__(self, name: str, folder: Path, root: Path, seeds: list[int] | None = None, cache: Path | None = None):
        from pipeline.training.spec import FoldSpec

        record = read_record(folder)
        self.name, self.folder = name, folder
        self.cfg = saved_config(folder, root)
        self.spec = FoldSpec.of(self.cfg)
        self.seeds = seeds or list(record["seeds"])
        missing = sorted(set(self.seeds) - set(record["seeds"]))
        if missing:
            raise PodiumError(f"{folder / 'fitted'} holds seeds {record['seeds']}, not {missing}. Retrain the model.")
        self.n_folds = int(record["folds"])
        self.cache = cache or root / self.cfg.paths.cache
        self.seconds = 0.0  # time spent predicting, for rows/s
        self._folds = {
            (seed, fold): self._load(folder / "fitted" / f"seed_{seed}" / f"fold_{fold}")
            for seed in self.seeds
            for fold in range(self.n_folds)
        }
        self._trainer = None

    def _load(self, fold_dir: Path) -> Any:
        """One fold's fitted model: an estimator, or (LightningModule, tokenizer or None)."""
        spec = self.spec
        if spec.kind == "estimator":
            return load_estimator(fold_dir / ESTIMATOR, own_modules(OmegaConf.to_container(spec.model)))
        from safetensors.torch import load_file

        from pipeline.models import family
        from pipeline.training.module import CompetitionModule
        from pipeline.training.tta import build_tta

        builders, tokenizer = family(spec.model.family).builders(), None
        if spec.text_column is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(fold_dir / TOKENIZER), local_files_only=True)
            net = builders.build_text(spec.model, tokenizer, spec.n_logits, spec.root)
        else:
            image = self.cfg.competition.image
            net = builders.build_image(spec.model, image.channels, image.height, image.width, spec.n_logits, spec.root)
        net.load_state_dict(load_file(str(fold_dir / WEIGHTS)))
        module = CompetitionModule(
            net,
            spec.model,
            spec.task,
            spec.metric,
            None,
            build_tta(spec.tta, spec.modality, spec.task),
            channels_last=spec.channels_last,
        )
        return module.eval(), tokenizer

    def predict(self, rows: Rows) -> np.ndarray:
        """The model's predictions of `rows` (rows, outputs): the mean over seeds of the mean over folds."""
        import time

        started = time.perf_counter()
        per_seed = []
        for seed in self.seeds:
            total = np.zeros((len(rows), self.spec.n_outputs))
            for fold in range(self.n_folds):
                total += self._predict_fold(self._folds[seed, fold], rows) / self.n_folds
            per_seed.append(total)
        self.seconds += time.perf_counter() - started
        return np.mean(per_seed, axis=0)

    def _predict_fold(self, fitted: Any, rows: Rows) -> np.ndarray:
        spec = self.spec
        if spec.kind == "estimator":
            from pipeline.models.estimator import predictions

            inputs = (
                rows.texts
                if rows.texts is not None
                else np.asarray(rows.images, dtype=np.float32).reshape(len(rows), -1) / 255.0
            )
            return predictions(fitted, inputs, spec.task, spec.n_outputs)
        from pipeline.training.data import ImageArrayDataset
        from pipeline.training.distributed import gather_rows
        from pipeline.training.inputs import eval_loader
        from pipeline.training.text_data import PadCollator, TokenDataset, tokenize

        module, tokenizer = fitted
        collate = None
        if tokenizer is not None:
            ids, offsets = tokenize(rows.texts, tokenizer, spec.model.max_length, self.cache)
            dataset = TokenDataset(ids, offsets, np.arange(len(rows)))
            collate = PadCollator(tokenizer.pad_token_id)
        else:
            dataset = ImageArrayDataset(rows.images)
        loader, positions = eval_loader(dataset, spec, collate)
        batches = self.trainer().predict(module, loader) or []
        out = np.concatenate([b.numpy() for b in batches]).astype(np.float64)
        return gather_rows(positions, out, len(dataset), f"{self.name} predictions")

    def trainer(self):
        """A one-device Lightning Trainer with the training's accelerator and precision, for prediction only."""
        if self._trainer is None:
            import lightning.pytorch as L

            from pipeline.training.quiet import quiet_lightning

            quiet_lightning()
            flags = self.spec.trainer
            self._trainer = L.Trainer(
                accelerator=flags.get("accelerator", "auto"),
                devices=1,
                precision=flags.get("precision", "32-true"),
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                use_distributed_sampler=False,
            )
        return self._trainer
