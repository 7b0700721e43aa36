"""`podium predict`: the ensemble run on new rows, written as a validated submission.

Every member of the ensemble's blend (pipeline/inference/blend.py) is rebuilt from its fitted
state (pipeline/inference/model.py) and predicts the new rows chunk by chunk: a chunk of texts is
tokenized, a chunk of images decoded, and predicted by every member before the next. The members'
predictions of all rows (a few numbers a row) are then blended at once, since a blend may read
across rows (rank_mean ranks them). The submission has the given file's ids, in its order, and
the competition's submission columns; it is validated and written by rename, or not at all.

What stays in memory: every member's fitted folds (all loaded before the first chunk), the test
file's ids and texts, one chunk of decoded images or tokens, and the members' predictions.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline import io, progress
from pipeline.errors import PodiumError

log = logging.getLogger(__name__)
CHUNK_ROWS = 8192  # rows decoded or tokenized at once: bounds memory, and batches match training's on the demos
WARM_ROWS = 2000  # below this many rows, rows/s is dominated by start-up: the time estimate says so


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


def image_folder(args, comp: DictConfig) -> Path | None:
    """--images, else the competition's image folder name beside the test file (Kaggle's layout)."""
    if comp.modality != "image":
        return None
    return args.images or args.test.parent / comp.files.images


def predict_file(
    ensemble_dir: Path,
    root: Path,
    test_path: Path,
    images: Path | None,
    out: Path,
    chunk_rows: int = CHUNK_ROWS,
    test: pd.DataFrame | None = None,
) -> PredictResult:
    """Predict the rows of `test_path` with the ensemble saved in `ensemble_dir` (members' folders under `root`).

    `test`: the file already read by `load_test` (it is read here otherwise).
    """
    from pipeline.data.raw import expected_submission_columns, load_test
    from pipeline.ensemble.methods import Problem
    from pipeline.inference.blend import load_blend
    from pipeline.inference.fitted import config_targets
    from pipeline.inference.model import FittedModel, saved_config
    from pipeline.metrics import get_metric
    from pipeline.predictions import as_stored
    from pipeline.submission import build_submission, check_submission

    ensemble_cfg = saved_config(ensemble_dir, root)
    comp = ensemble_cfg.competition
    if test is None:
        test = load_test(Path(test_path), comp, images)  # bad input refused before any model loads
    needed = [comp.id_column, *([comp.text.column] if comp.modality == "text" else [])]
    if comp.modality != "tabular" and list(test.columns) != needed:  # the rows were read with today's config
        raise PodiumError(
            f"The rows of {test_path} were read as columns {list(test.columns)}, but the ensemble in {ensemble_dir} "
            f"was trained on columns {needed} of competition {comp.name}: its config changed since. Rerun the "
            f"pipeline (`dvc repro`) after changing the competition's columns, or restore them."
        )
    started = time.perf_counter()
    problem = Problem(get_metric(comp.metric), comp.task, ensemble_cfg.ensemble)
    blend, members = load_blend(
        ensemble_dir / "blend", problem, config_targets(OmegaConf.to_container(ensemble_cfg.ensemble)), root
    )
    with tempfile.TemporaryDirectory(prefix="podium-predict-") as scratch:  # tokens of these rows: not kept
        models = [FittedModel(m.name, root / m.folder, root, m.seeds, Path(scratch)) for m in members]
        for model in models:  # a member trained on other classes would blend columns of other meanings
            if list(model.spec.classes) != list(comp.classes) or model.spec.task != comp.task:
                raise PodiumError(
                    f"Member {model.name} ({model.folder}) predicts {model.spec.task} classes "
                    f"{list(model.spec.classes)}, but the ensemble blends {comp.task} classes {list(comp.classes)}: "
                    f"they were trained on other competition configs. Retrain the member and the ensemble (`dvc repro`)."
                )
        tables = None
        if comp.modality == "tabular":  # every member's features, typed and checked before any predicts
            tables = [model.read_table(test, Path(test_path)) for model in models]
        load_seconds = time.perf_counter() - started
        log.info(
            "%d member(s) loaded in %.1f s; predicting %d rows of %s", len(models), load_seconds, len(test), test_path
        )
        started = time.perf_counter()
        outputs = _predict_chunks(models, test, comp, images, chunk_rows, test_path, tables)
        seconds = time.perf_counter() - started  # decoding and tokenizing included
    # rounded as the pipeline's saved predictions are, so the blend sees what the ensemble stage saw
    predictions = as_stored(blend.apply(np.stack([as_stored(o) for o in outputs])))

    ids = test[comp.id_column].to_numpy()
    columns = expected_submission_columns(comp)
    template = pd.DataFrame(
        {c: ids if c == comp.id_column else np.nan for c in columns}
    )  # the ids, in the file's order
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


def _predict_chunks(
    models, test: pd.DataFrame, comp, images: Path | None, chunk_rows: int, test_path, tables: list | None = None
) -> list:
    """Each member's predictions of every row of `test`, computed `chunk_rows` rows at a time (`tables`: each
    member's typed feature table of all rows, for a tabular competition)."""
    from pipeline.data.images import decode_images
    from pipeline.inference.model import Rows

    parts: list[list[np.ndarray]] = [[] for _ in models]
    with progress.bar("predicting", total=len(test)) as bar:
        for first in range(0, len(test), chunk_rows):
            chunk = test.iloc[first : first + chunk_rows]
            if comp.modality == "text":
                rows = Rows(texts=chunk[comp.text.column].tolist())
            elif comp.modality == "tabular":
                rows = None  # each member's own features, below
            else:
                ids = chunk[comp.id_column].tolist()
                rows = Rows(images=decode_images(ids, images, comp.files.image_suffix, comp.image, "test images"))
            for index, (model, part) in enumerate(zip(models, parts)):
                if tables is not None:
                    rows = Rows(table=tables[index].iloc[first : first + chunk_rows].reset_index(drop=True))
                pred = model.predict(rows)
                if not np.isfinite(pred).all():
                    raise PodiumError(
                        f"Member {model.name} ({model.folder}) predicted NaN or infinity for "
                        f"{int((~np.isfinite(pred)).any(axis=1).sum())} row(s) of {test_path} (from row "
                        f"{first + 1}), so nothing was written. Check those rows' inputs, or retrain the member."
                    )
                part.append(pred)
            bar.advance(len(chunk))
    return [np.concatenate(part) for part in parts]


def print_report(result: PredictResult, expect_rows: int | None, budget_minutes: float) -> None:
    """Rows/s per member and overall; with `expect_rows`, whether a hidden test set that size fits the budget."""
    from pipeline.report import table

    rows = [[m["member"], m["models"], f"{m['seconds']:.1f}", f"{m['rows_per_s']:,.0f}"] for m in result.members]
    rows.append(["all members", "", f"{result.seconds:.1f}", f"{result.rows_per_second:,.0f}"])
    print(table(["member", "models", "seconds", "rows/s"], rows))
    print(
        f"{result.rows} rows predicted in {result.seconds:.1f} s ({result.rows_per_second:.0f} rows/s; members "
        f"loaded in {result.load_seconds:.1f} s) -> {result.path}"
    )
    if expect_rows:
        fits, minutes = result.fits(expect_rows, budget_minutes)
        verdict = "fits within" if fits else "does NOT fit within"
        caveat = (
            f" (measured on {result.rows} rows only, start-up included: predict a larger sample for a firm figure)"
            if result.rows < WARM_ROWS
            else ""
        )
        print(
            f"{expect_rows} rows would take about {minutes:.1f} minutes: {verdict} the "
            f"{budget_minutes:g}-minute budget{caveat}"
        )
