"""A trained model rebuilt from its output folder, predicting new rows as training predicted the test set.

Each fold's network is rebuilt from the model's saved config (config.yaml) with its fitted weights,
wrapped in the same LightningModule (so the same test-time augmentation and precision apply) and
predicted through a Lightning Trainer; each fold's estimator is loaded from skops, or by its library
where the family keeps its own format (gradient-boosted trees). A tabular model reads new rows with
the feature types of its training rows (`fitted.json` keeps them). The folds' predictions are
averaged per seed and the seeds' means averaged, as `train` averaged them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PodiumError
from pipeline.inference.fitted import (
    ARCHITECTURE,
    ESTIMATOR,
    TOKENIZER,
    WEIGHTS,
    config_targets,
    load_estimator,
    read_record,
)

log = logging.getLogger(__name__)


@dataclass
class Rows:
    """A chunk of new rows: their texts (text competitions), decoded images (uint8, N x C x H x W) or typed
    feature table (tabular competitions, `FittedModel.read_table`)."""

    texts: list[str] | None = None
    images: np.ndarray | None = None
    table: pd.DataFrame | None = None

    def __len__(self) -> int:
        if self.table is not None:
            return len(self.table)
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


class FittedModel:
    """One trained model (all its folds, of `seeds` or of every seed it trained), ready to predict."""

    def __init__(self, name: str, folder: Path, root: Path, seeds: list[int] | None, cache: Path):
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
        self.schema = None  # a tabular model's feature types
        if "features" in record:
            from pipeline.data.tabular import TableSchema

            self.schema = TableSchema.from_json(record["features"])
        self.cache = cache  # where the new rows' tokens go
        self.seconds = 0.0  # time spent predicting, for rows/s
        self._folds = {
            (seed, fold): self._load(folder / "fitted" / f"seed_{seed}" / f"fold_{fold}")
            for seed in self.seeds
            for fold in range(self.n_folds)
        }
        self._trainer = None

    def _load(self, fold_dir: Path) -> Any:
        """One fold's fitted model: an estimator, or (LightningModule, tokenizer or None)."""
        from pipeline.models import family

        spec = self.spec
        builders = family(spec.model.family).builders()
        if spec.kind == "estimator" and hasattr(builders, "load"):  # the library's own format
            return builders.load(fold_dir, spec.model)
        if spec.kind == "estimator":
            return load_estimator(fold_dir / ESTIMATOR, config_targets(OmegaConf.to_container(spec.model)))
        from safetensors.torch import load_file

        from pipeline.training.module import CompetitionModule
        from pipeline.training.tta import build_tta

        tokenizer, model = None, spec.model
        if hasattr(builders, "rebuild_overrides"):  # e.g. no pretrained weights to fetch: the fold's replace them
            model = OmegaConf.merge(model, builders.rebuild_overrides(model, fold_dir / ARCHITECTURE))
        if self.schema is not None:  # a table: the fold's scaling comes with its weights
            net = builders.build_table(model, self.schema, spec.n_logits, spec.root)
        elif spec.text_column is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(fold_dir / TOKENIZER), local_files_only=True)
            net = builders.build_text(model, tokenizer, spec.n_logits, spec.root)
        else:
            image = self.cfg.competition.image
            net = builders.build_image(model, image.channels, image.height, image.width, spec.n_logits, spec.root)
        net.load_state_dict(load_file(str(fold_dir / WEIGHTS)))
        module = CompetitionModule(
            net,
            OmegaConf.merge(spec.model, {"loss": None}),  # predicting needs no loss (nor the user's loss code)
            spec.task,
            spec.metric,
            None,
            build_tta(spec.tta, spec.modality, spec.task),
            channels_last=spec.channels_last,
        )
        return module.eval(), tokenizer

    def read_table(self, rows: pd.DataFrame, path: Path) -> pd.DataFrame:
        """A tabular model's features of `rows` (every cell text, as load_test reads them), typed as its training
        rows were; a missing feature column or a value of another type is refused, naming `path`."""
        from pipeline.data.tabular import typed

        return typed(rows, self.schema, path, "new")

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
            from pipeline.training.fold import estimator_predictions, flat_pixels

            if rows.table is not None:
                return estimator_predictions(fitted, rows.table, spec)
            return estimator_predictions(
                fitted, rows.texts if rows.texts is not None else flat_pixels(rows.images), spec
            )
        from pipeline.models import family
        from pipeline.training.distributed import gather_rows
        from pipeline.training.image_data import ImageArrayDataset
        from pipeline.training.inputs import eval_loader
        from pipeline.training.text_data import PadCollator, TokenDataset, tokenize

        module, tokenizer = fitted
        collate = None
        if rows.table is not None:
            from pipeline.training.data import TableDataset

            dataset = TableDataset(*family(spec.model.family).builders().table_tensors(rows.table, self.schema))
        elif tokenizer is not None:
            cut = spec.model.get("truncation", "head")  # a model saved before truncation was a key: head
            ids, offsets = tokenize(rows.texts, tokenizer, spec.model.max_length, self.cache, cut)
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
            accelerator, precision = device_and_precision(self.spec.trainer, self.name)
            self._trainer = L.Trainer(
                accelerator=accelerator,
                devices=1,
                precision=precision,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                use_distributed_sampler=False,
            )
        return self._trainer


def device_and_precision(flags: dict, name: str) -> tuple[str, str]:
    """The training's accelerator and precision where this machine has them, said once where not: a model
    trained on a GPU predicts on a CPU-only machine, and a 16-bit mixed precision becomes what this CPU runs
    fast (bf16-mixed where it computes bf16 natively, else 32-true: emulated bf16 is 7-40x slower); bf16 on
    a GPU without native bf16 becomes 16-mixed."""
    import torch

    from pipeline.config import precision as precisions

    accelerator, precision = str(flags.get("accelerator", "auto")), str(flags.get("precision", "32-true"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        log.info("%s was trained on %s; this machine has none: predicting on the CPU", name, accelerator)
        accelerator = "cpu"
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and precision in ("16-mixed", "16", "bf16-mixed", "bf16"):
        fast = precisions.resolve(precisions.AUTO, "cpu")
        if fast != precision:
            log.info("%s was trained in precision %s; on this CPU predicting in %s", name, precision, fast)
            precision = fast
    elif not on_cpu and precision in ("bf16-mixed", "bf16") and not precisions.cuda_bf16():
        # trained on an Ampere GPU, predicting on an older one (Kaggle's T4, P100): emulated bf16 is slow there
        log.info("%s was trained in precision %s; this GPU has no native bf16: predicting in 16-mixed", name, precision)
        precision = "16-mixed"
    return accelerator, precision
