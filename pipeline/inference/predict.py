"""`podium predict`: the ensemble run on new rows, written as a validated submission.

Every member of the ensemble's blend (pipeline/inference/blend.py) is rebuilt from its fitted
state (pipeline/inference/model.py) and predicts the new rows chunk by chunk: a chunk of texts is
tokenized, a chunk of images decoded, predicted by every member and blended before the next, so
memory holds one chunk of inputs whatever the number of rows. The submission has the given file's
ids, in its order, and the competition's submission columns; it is validated and written by
rename, or not at all.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from pipeline import io, progress
from pipeline.errors import PodiumError

log = logging.getLogger(__name__)
CHUNK_ROWS = 8192  # rows decoded or tokenized at once: bounds memory, and batches match training's on the demos


@dataclass
class PredictResult:
    path: Path
    rows: int
    seconds: float  # predicting, models loaded
    load_seconds: float  # rebuilding the members from their fitted state
    members: list[dict] = field(default_factory=list)  # name, folds x seeds, seconds, rows/s
    ids: np.ndarray | None = None  # the rows' ids, in the file's order
    predictions: np.ndarray | None = None  # the blend's (rows, outputs): probabilities, or values

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)

    def fits(self, expect_rows: int, budget_minutes: float) -> tuple[bool, float]:
        """Whether `expect_rows` rows would be predicted within `budget_minutes`, and the estimated minutes."""
        minutes = (self.load_seconds + expect_rows / self.rows_per_second) / 60
        return minutes <= budget_minutes, minutes


def predict_file(
    ensemble_dir: Path,
    root: Path,
    test_path: Path,
    images: Path | None,
    out: Path,
    chunk_rows: int = CHUNK_ROWS,
    cache: Path | None = None,
) -> PredictResult:
    """Predict the rows of `test_path` with the ensemble saved in `ensemble_dir` (members' folders under `root`)."""
    from pipeline.data.images import decode_images
    from pipeline.data.raw import expected_submission_columns, load_test
    from pipeline.ensemble.methods import Problem
    from pipeline.inference.blend import load_blend
    from pipeline.inference.model import FittedModel, Rows, own_modules, saved_config
    from pipeline.metrics import get_metric
    from pipeline.predictions import as_stored
    from pipeline.submission import build_submission, check_submission

    ensemble_cfg = saved_config(ensemble_dir, root)
    comp = ensemble_cfg.competition
    test = load_test(Path(test_path), comp, images)  # bad input refused before any model loads
    started = time.perf_counter()
    problem = Problem(get_metric(comp.metric), comp.task, ensemble_cfg.ensemble)
    blend, members = load_blend(
        ensemble_dir / "blend", problem, own_modules(OmegaConf.to_container(ensemble_cfg.ensemble))
    )
    models = [FittedModel(m.name, root / m.folder, root, m.seeds, cache) for m in members]
    for model in models:  # a member trained on other classes would blend columns of other meanings
        if list(model.spec.classes) != list(comp.classes) or model.spec.task != comp.task:
            raise PodiumError(
                f"Member {model.name} ({model.folder}) predicts {model.spec.task} classes {list(model.spec.classes)}, "
                f"but the ensemble blends {comp.task} classes {list(comp.classes)}: they were trained on other "
                f"competition configs. Retrain the member and the ensemble (`dvc repro`)."
            )
    load_seconds = time.perf_counter() - started
    log.info("%d member(s) loaded in %.1f s; predicting %d rows of %s", len(models), load_seconds, len(test), test_path)

    ids = test[comp.id_column].to_numpy()
    blended, started = [], time.perf_counter()
    with progress.bar("predicting", total=len(test)) as bar:
        for first in range(0, len(test), chunk_rows):
            chunk = test.iloc[first : first + chunk_rows]
            rows = (
                Rows(texts=chunk[comp.text.column].tolist())
                if comp.modality == "text"
                else Rows(
                    images=decode_images(
                        chunk[comp.id_column].tolist(), images, comp.files.image_suffix, comp.image, "test images"
                    )
                )
            )
            # rounded as the pipeline's saved predictions are, so the blend sees what the ensemble stage saw
            outputs = [as_stored(model.predict(rows)) for model in models]
            for model, pred in zip(models, outputs):
                if not np.isfinite(pred).all():
                    raise PodiumError(
                        f"Member {model.name} ({model.folder}) predicted NaN or infinity for "
                        f"{int((~np.isfinite(pred)).any(axis=1).sum())} row(s) of {test_path} (from row "
                        f"{first + 1}), so nothing was written. Check those rows' inputs, or retrain the member."
                    )
            blended.append(as_stored(blend.apply(np.stack(outputs))))
            bar.advance(len(chunk))
    seconds = time.perf_counter() - started

    columns = expected_submission_columns(comp)
    template = pd.DataFrame(
        {c: ids if c == comp.id_column else np.nan for c in columns}
    )  # the ids, in the file's order
    predictions = np.concatenate(blended)
    sub = build_submission(ids, predictions, template, comp)
    check_submission(sub, template, comp, str(out), outcome="Nothing was written.")
    io.write_csv(out, sub)
    board = [
        {
            "member": m.name,
            "models": f"{m.n_folds} folds x {len(m.seeds)} seed(s)",
            "seconds": round(m.seconds, 2),
            "rows_per_s": round(len(test) / max(m.seconds, 1e-9)),
        }
        for m in models
    ]
    return PredictResult(Path(out), len(test), seconds, load_seconds, board, ids, predictions)
