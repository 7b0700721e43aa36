"""A fold's saved state, so an interrupted run resumes instead of starting over.

Each fold of a config has its own folder (under `paths.checkpoints`, outside DVC's outputs, which
DVC deletes before rerunning a stage):

    best.ckpt     the checkpoint with the best validation score (predictions come from it)
    last.ckpt     the end of the latest epoch: an interrupted fold resumes from here
    history.json  that fold's per-epoch metrics so far
    result.npz    the fold's predictions, written once the fold is done: a rerun reuses them
    data.txt      the identity of the prepared data the fold trains on (pipeline/data/identity.py):
                  saved state is reused only for the same data, so a relabelled row, an added
                  image or a moved fold trains afresh instead of keeping results of other data

Every file is written to a temporary name and renamed into place, so a kill at any moment leaves
either the previous complete file or the new one. A finished `train` deletes last.ckpt,
history.json and result.npz: a complete run leaves only best.ckpt, and the next run of the same
config trains afresh.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from pipeline import io
from pipeline.errors import PodiumError

RESUME_FILES = ("last.ckpt", "history.json", "result.npz")
log = logging.getLogger(__name__)
_told: set[Path] = set()  # fold folders whose stale state was reported already


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written by rename (never half-written) and read with `weights_only=True`
    (a checkpoint file cannot run code when it is loaded)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with io.atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self, path, map_location=lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return torch.load(path, map_location=map_location, weights_only=True)


@dataclass
class FoldResult:
    valid: np.ndarray
    test: np.ndarray | None
    best_epoch: int | None


class FoldState:
    """The files of one fold of one config (see the module docstring)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def last(self) -> Path:
        return self.folder / "last.ckpt"

    def same_data(self, identity: str, label: str) -> bool:
        """Whether saved resume state (if any) was computed from the prepared data `identity`; says why not."""
        if not any((self.folder / name).is_file() for name in RESUME_FILES):
            return True
        path = self.folder / "data.txt"
        recorded = path.read_text().strip() if path.is_file() else None
        if recorded == identity:
            return True
        if self.folder not in _told:  # train_seed and train_fold both ask: say it once
            _told.add(self.folder)
            log.info(
                "%s: the saved state in %s was computed from other data (prepared data %s, now %s: rows, labels, "
                "folds or images changed), so it is not reused: training this fold afresh",
                label,
                self.folder,
                recorded or "unrecorded",
                identity,
            )
        return False

    def start(self, identity: str) -> None:
        """A fresh start of the fold on the prepared data `identity`: earlier files removed, the identity recorded."""
        self.clear()
        _told.discard(self.folder)
        io.write_text(self.folder / "data.txt", identity + "\n")

    def finished(self) -> FoldResult | None:
        """The fold's predictions if an earlier run of this config finished the fold (check `same_data` first)."""
        path = self.folder / "result.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as saved:
            test = saved["test"] if saved["test"].size else None
            best = int(saved["best_epoch"])
            return FoldResult(saved["valid"], test, best if best >= 0 else None)

    def save_result(self, result: FoldResult) -> None:
        with io.atomic_path(self.folder / "result.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    valid=result.valid,
                    test=result.test if result.test is not None else np.empty(0),
                    best_epoch=np.int64(-1 if result.best_epoch is None else result.best_epoch),
                )

    def resumable_epoch(self) -> int | None:
        """The epoch an interrupted fold resumes at (the one after its last checkpoint), or None."""
        if not self.last.is_file():
            return None
        try:
            return int(torch.load(self.last, map_location="cpu", weights_only=True)["epoch"]) + 1
        except Exception as exc:
            raise PodiumError(
                f"The checkpoint {self.last} cannot be read as plain tensors ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]}), so it is not loaded: a checkpoint that needs more than "
                f"tensors to load could run code. Delete {self.folder} or rerun with train.resume=false "
                f"to train this fold afresh."
            ) from None

    def history(self, before_epoch: int) -> list[dict]:
        """The fold's recorded epochs before `before_epoch` (later ones ran past the last checkpoint)."""
        path = self.folder / "history.json"
        rows = json.loads(path.read_text()) if path.is_file() else []
        return [row for row in rows if row["epoch"] < before_epoch]

    def save_history(self, rows: list[dict]) -> None:
        io.write_json(self.folder / "history.json", rows)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def finish(self) -> None:
        """Drop what only a resume needs (the run is complete); keep best.ckpt and the tokenizer."""
        for name in RESUME_FILES:
            (self.folder / name).unlink(missing_ok=True)
