"""The on-disk form of out-of-fold and test predictions, shared by train, ensemble and submit.

  oof.parquet    id, fold, target, then the prediction columns: every training id exactly once
  test.parquet   id, then the prediction columns: the mean over the folds' models

Prediction columns are `prob_<class>` per class for classification (binary tasks too), and
`prediction` for regression.

The metrics.json written beside them records their hashes (`files`): readers check them, so a
folder whose predictions are not the ones its scores describe (files of two runs mixed, by hand
or by a tool that restores some outputs and not others) is refused, never blended or submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline import io
from pipeline.errors import PodiumError


def prediction_columns(comp: DictConfig) -> list[str]:
    if comp.task == "regression":
        return ["prediction"]
    return [f"prob_{c}" for c in comp.classes]


def n_outputs(comp: DictConfig) -> int:
    return len(prediction_columns(comp))


def n_logits(comp: DictConfig) -> int:
    """Network outputs: one logit for a binary task (sigmoid), else one per prediction column."""
    return 1 if comp.task == "binary" else n_outputs(comp)


STORED = np.float32  # predictions are saved at float32 precision (oof.parquet, test.parquet)


def as_stored(values: np.ndarray) -> np.ndarray:
    """`values` rounded as saving and reading them back rounds them: what the ensemble and submit stages see."""
    return np.asarray(values).astype(STORED).astype(np.float64)


@dataclass
class Predictions:
    """One model's (or blend's) predictions: arrays aligned with the id lists."""

    oof_ids: np.ndarray
    folds: np.ndarray
    target: np.ndarray
    oof: np.ndarray  # (n_train, n_outputs)
    test_ids: np.ndarray
    test: np.ndarray  # (n_test, n_outputs)

    def save(self, folder: Path, comp: DictConfig) -> list[Path]:
        cols = prediction_columns(comp)
        oof = pd.DataFrame({comp.id_column: self.oof_ids, "fold": self.folds, "target": self.target})
        oof[cols] = self.oof.astype(STORED)
        test = pd.DataFrame({comp.id_column: self.test_ids})
        test[cols] = self.test.astype(STORED)
        paths = [folder / "oof.parquet", folder / "test.parquet"]
        io.write_parquet(paths[0], oof)
        io.write_parquet(paths[1], test)
        return paths


def file_hashes(paths: list[Path]) -> dict[str, str]:
    """{file name: sha256} of prediction files, for the metrics.json beside them."""
    from pipeline.data.identity import file_sha256

    return {p.name: file_sha256(p) for p in paths}


def check_consistent(folder: Path) -> dict:
    """The folder's metrics.json ({} if none), after checking that the files it records are the ones present."""
    import json

    path = folder / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    from pipeline.data.identity import file_sha256

    changed = [
        name
        for name, digest in metrics.get("files", {}).items()
        if not (folder / name).is_file() or file_sha256(folder / name) != digest
    ]
    if changed:
        raise PodiumError(
            f"{folder} is inconsistent: {', '.join(changed)} is not the file its metrics.json describes (the folder "
            f"mixes files of different runs), so its scores would not be those of its predictions. Rerun the stage "
            f"that writes it (`dvc repro`, or the podium command that made it)."
        )
    return metrics


def load_predictions(folder: Path, comp: DictConfig) -> Predictions:
    """Read a model's oof.parquet and test.parquet, checking their columns and `check_consistent`."""
    cols = prediction_columns(comp)
    check_consistent(folder)
    frames = {}
    for name in ("oof", "test"):
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise PodiumError(
                f"{path} does not exist. Train that model first (podium train model=...) or drop it from ensemble.members."
            )
        frame = pd.read_parquet(path)
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise PodiumError(
                f"{path} lacks prediction column(s) {missing}: it was made for another competition config. Retrain the model."
            )
        frames[name] = frame
    oof, test = frames["oof"], frames["test"]
    return Predictions(
        oof_ids=oof[comp.id_column].to_numpy(),
        folds=oof["fold"].to_numpy(),
        target=oof["target"].to_numpy(),
        oof=oof[cols].to_numpy(np.float64),
        test_ids=test[comp.id_column].to_numpy(),
        test=test[cols].to_numpy(np.float64),
    )
