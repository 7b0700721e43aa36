"""Load a competition's raw files (Kaggle layout) and refuse anything inconsistent.

Each check raises a PodiumError that names the file, the column and the fix; nothing is
written before all of them pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline.errors import PodiumError
from pipeline.io import raw_dir

if TYPE_CHECKING:
    from pipeline.data.tabular import TableSchema


@dataclass
class RawData:
    train: pd.DataFrame  # id column, encoded `target` (class index or float), optional `group`, text column
    test: pd.DataFrame  # id column (and text column), in test.csv's order
    sample: pd.DataFrame  # sample_submission.csv as given
    folder: Path
    features: Features | None = None  # tabular competitions: the typed feature tables


@dataclass
class Features:
    """A tabular competition's typed features (pipeline/data/tabular.py), rows as in `RawData`'s tables."""

    schema: TableSchema
    train: pd.DataFrame
    test: pd.DataFrame


def read_table(path: Path, id_column: str, what: str) -> pd.DataFrame:
    """Read a CSV as text, every cell exactly as written.

    pandas' type guessing would turn `true` into True, `01` into 1 and `NA`, `None` or `null`
    into NaN; here no value is guessed: each column is parsed later by its declared role (ids,
    labels and texts stay text, numbers are parsed where a number is expected). An empty cell
    is the empty string.
    """
    if not path.is_file():
        raise PodiumError(
            f"Missing {what}: {path} does not exist. Put the competition's files in {path.parent}/ "
            f"(Kaggle's layout: train.csv, test.csv, sample_submission.csv), or fix `files:` in "
            f"the competition's YAML."
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        header = _header(path)
    except pd.errors.EmptyDataError:
        raise PodiumError(
            f"The {what} {path} is empty. It needs a header row (the column names) and one row per id."
        ) from None
    except UnicodeDecodeError as exc:
        raise PodiumError(
            f"The {what} {path} is not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at position {exc.start}). "
            f"Save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed.csv`."
        ) from None
    except pd.errors.ParserError as exc:
        raise PodiumError(f"Cannot read {what} {path}: {exc}. Is it a valid CSV file?") from None
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:  # pandas would rename the second one `label.1` and read the first without a word
        raise PodiumError(
            f"{path}: the header names column(s) {repeated} more than once ({', '.join(header)}). "
            f"Each column needs its own name: rename or drop the duplicate."
        )
    require_columns(frame, {id_column: "id_column"}, path)
    return frame


def _header(path: Path) -> list[str]:
    """The column names as the file's first record spells them (before pandas renames duplicates)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def lines_of(mask: np.ndarray, first: int = 5) -> list[int]:
    """File line numbers (the header is line 1) of the first rows where `mask` holds."""
    return (np.flatnonzero(mask)[:first] + 2).tolist()


def require_columns(frame: pd.DataFrame, columns: dict[str, str], path: Path) -> None:
    """Refuse a file without one of `columns` (column -> the competition key that names it), naming the key."""
    missing = {c: key for c, key in columns.items() if c not in frame.columns}
    if missing:
        named = ", ".join(f"{c!r} (competition.{key})" for c, key in missing.items())
        keys = " / ".join(dict.fromkeys(missing.values()))
        raise PodiumError(
            f"{path} has no column {named} (it has: {', '.join(map(str, frame.columns))}). "
            f"Rename the column in the file, or set the competition's {keys} to one of its columns."
        )


def blank(values: pd.Series) -> np.ndarray:
    """Cells that hold nothing but white space (NaN too, for frames not read by `read_table`)."""
    return values.isna().to_numpy() | values.astype(str).str.strip().eq("").to_numpy()


def check_ids(frame: pd.DataFrame, id_column: str, path: Path) -> None:
    ids = frame[id_column]
    empty = blank(ids)
    if empty.any():
        raise PodiumError(f"{path}: column {id_column!r} is empty on line(s) {lines_of(empty)}. Every row needs an id.")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise PodiumError(
            f"{path}: column {id_column!r} has {len(dup)} duplicated id(s), e.g. {list(dup[:5])}. "
            f"Ids must be unique; remove or rename the duplicate rows."
        )


def parse_numbers(values: pd.Series, path: Path, column: str, what: str) -> np.ndarray:
    """Text cells as finite floats; a named error listing the values that are not, with their lines."""
    numbers = pd.to_numeric(values.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        examples = [values.iloc[i] for i in np.flatnonzero(bad)[:5]]
        raise PodiumError(
            f"{path}: {what} {column!r} needs a finite number on every row, but {int(bad.sum())} row(s) hold "
            f"{examples} (empty, text, NaN or infinity), first on line(s) {lines_of(bad)}. Fix or drop those rows."
        )
    return numbers


def check_file_ids(frame: pd.DataFrame, id_column: str, path: Path, folder: Path, suffix: str) -> None:
    """Ids that name files (images/<id><suffix>) must stay inside `folder`: no '../', no absolute paths."""
    inside = os.path.normpath(folder) + os.sep
    bad = [
        i
        for i in frame[id_column]
        if "\\" in i or "\0" in i or not os.path.normpath(os.path.join(folder, f"{i}{suffix}")).startswith(inside)
    ]
    if bad:
        raise PodiumError(
            f"{path}: column {id_column!r} has {len(bad)} id(s) that would name files outside {folder}, "
            f"e.g. {bad[:3]}. Ids name the image files inside that folder: remove the '..' parts, leading "
            f"'/' and backslashes from them."
        )


def encode_target(train: pd.DataFrame, comp: DictConfig, path: Path) -> np.ndarray:
    """Class names -> indices in `competition.classes` order; regression targets -> float."""
    column = comp.target_column
    values = train[column]
    empty = blank(values)
    if empty.any():
        raise PodiumError(
            f"{path}: target column {column!r} is empty on {int(empty.sum())} row(s), first on line(s) "
            f"{lines_of(empty)}. Fill or drop those rows."
        )
    if comp.task == "regression":
        from pipeline.data import target

        numbers = parse_numbers(values, path, column, "regression target")
        transform = target.of(comp)
        if "rmsle" in (comp.metric, *comp.get("report_metrics", [])):  # its log1p needs values above -1
            target.forward(numbers, "log1p", f"{path}: target column {column!r} (scored by rmsle)")
        return target.forward(numbers, transform, f"{path}: target column {column!r}").astype(np.float32)
    classes = list(comp.classes)
    unknown = sorted(set(values) - set(classes))
    if unknown:
        raise PodiumError(
            f"{path}: target column {column!r} has label(s) {unknown[:10]} that are not among the "
            f"competition's classes {classes} (labels are compared as written, case and spaces included). "
            f"Fix the labels, or add them to `classes:` in conf/competition/{comp.name}.yaml (quoted, "
            f"e.g. '01' or 'true', so YAML keeps them text)."
        )
    return values.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)


def check_groups(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Every row names its group: an empty one would silently form a group of its own."""
    empty = blank(frame[column])
    if empty.any():
        raise PodiumError(
            f"{path}: group column {column!r} (competition.cv.group_column) is empty on {int(empty.sum())} row(s), "
            f"first on line(s) {lines_of(empty)}. Give every row its group, or drop those rows."
        )


def check_texts(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Every row holds a non-empty text, and the column is not a column of numbers."""
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    if len(values) and numeric.all():
        raise PodiumError(
            f"{path}: text column {column!r} holds only numbers (e.g. {values.iloc[0]!r}), not text. "
            f"Point competition.text.column at the column holding the texts."
        )
    empty = blank(values)
    if empty.any():
        raise PodiumError(
            f"{path}: text column {column!r} is empty on {int(empty.sum())} row(s), first on "
            f"line(s) {lines_of(empty)}. Fill those texts or drop the rows."
        )


def expected_submission_columns(comp: DictConfig) -> list[str]:
    """The columns a submission must have, in order."""
    if comp.task != "regression" and comp.submission.format == "probabilities" and comp.task == "multiclass":
        return [comp.id_column, *comp.classes]
    return [comp.id_column, comp.target_column]


def load_raw(cfg: DictConfig) -> RawData:
    """Read and validate train.csv, test.csv and sample_submission.csv of the competition."""
    comp = cfg.competition
    folder = raw_dir(cfg)
    files = comp.files
    train_path, test_path, sample_path = (folder / files.train, folder / files.test, folder / files.sample_submission)
    train = read_table(train_path, comp.id_column, "training file")
    test = read_table(test_path, comp.id_column, "test file")
    sample = read_table(sample_path, comp.id_column, "sample submission")

    text_column = comp.text.column if comp.modality == "text" else None
    needed = {
        comp.target_column: "target_column",
        **({comp.cv.group_column: "cv.group_column"} if comp.cv.group_column else {}),
        **({text_column: "text.column"} if text_column else {}),
    }
    require_columns(train, needed, train_path)
    for frame, path in ((train, train_path), (test, test_path), (sample, sample_path)):
        check_ids(frame, comp.id_column, path)
    for frame, path in ((train, train_path), (test, test_path)):
        if frame.empty:  # refused now, not after hours of training
            raise PodiumError(f"{path} has a header but no rows. It needs one row per id.")
    if comp.cv.group_column:
        check_groups(train, comp.cv.group_column, train_path)
    if comp.modality == "image":
        for frame, path in ((train, train_path), (test, test_path)):
            check_file_ids(frame, comp.id_column, path, folder / files.images, files.image_suffix)
    if text_column:
        require_columns(test, {text_column: "text.column"}, test_path)
        check_texts(train, text_column, train_path)
        check_texts(test, text_column, test_path)

    columns = expected_submission_columns(comp)
    if list(sample.columns) != columns:
        raise PodiumError(
            f"{sample_path} has columns {list(sample.columns)} but the competition's submission format "
            f"({comp.task}, {comp.submission.format}) expects {columns}. Fix `submission.format` or "
            f"the class names in conf/competition/{comp.name}.yaml."
        )
    test_ids, sample_ids = set(test[comp.id_column]), set(sample[comp.id_column])
    if test_ids != sample_ids:
        absent = sorted(test_ids - sample_ids)[:5]
        extra = sorted(sample_ids - test_ids)[:5]
        raise PodiumError(
            f"Test ids and sample-submission ids differ: {len(test_ids - sample_ids)} test id(s) are absent "
            f"from {sample_path} (e.g. {absent}) and {len(sample_ids - test_ids)} sample id(s) are not in "
            f"{test_path} (e.g. {extra}). Both files must list the same ids."
        )
    overlap = set(train[comp.id_column]) & test_ids
    if overlap:
        raise PodiumError(
            f"{len(overlap)} id(s) appear in both {train_path} and {test_path} (e.g. {sorted(overlap)[:5]}). "
            f"A row belongs to one of them."
        )

    features = None
    if comp.modality == "tabular":  # checked before the target: a config mistake first, then the data's
        from pipeline.data.tabular import infer_schema, typed

        schema = infer_schema(train, comp, train_path)
        features = Features(schema, typed(train, schema, train_path, "train"), typed(test, schema, test_path, "test"))

    out = pd.DataFrame({comp.id_column: train[comp.id_column].to_numpy()})
    out["target"] = encode_target(train, comp, train_path)
    if comp.cv.group_column:
        out["group"] = train[comp.cv.group_column].to_numpy()
    if text_column:
        out[text_column] = train[text_column].to_numpy()
    kept = [comp.id_column] + ([text_column] if text_column else [])
    return RawData(train=out, test=test[kept].reset_index(drop=True), sample=sample, folder=folder, features=features)


def load_test(path: Path, comp: DictConfig, images: Path | None) -> pd.DataFrame:
    """New rows to predict (`podium predict --test`): the id column and, for text, the text column, checked
    as the competition's own test.csv is (ids unique and present; image ids inside the image folder). A
    tabular competition's rows keep every column, as text: each model reads its features from them with
    the types of its training rows (pipeline/inference/model.py)."""
    test = read_table(path, comp.id_column, "test file")
    check_ids(test, comp.id_column, path)
    if test.empty:
        raise PodiumError(f"{path} has a header but no rows. It needs one row per id to predict.")
    kept = [comp.id_column]
    if comp.modality == "image":
        if images is None or not images.is_dir():
            raise PodiumError(
                f"The image folder {images} does not exist: the rows of {path} name image files "
                f"(<id>{comp.files.image_suffix}) there. Pass --images DIR."
            )
        check_file_ids(test, comp.id_column, path, images, comp.files.image_suffix)
        missing = [i for i in test[comp.id_column] if not (images / f"{i}{comp.files.image_suffix}").is_file()]
        if missing:
            raise PodiumError(
                f"{len(missing)} image(s) named by {path} are missing from {images}, e.g. "
                f"{[f'{i}{comp.files.image_suffix}' for i in missing[:5]]}. Each row needs its image there, or "
                f"pass the folder that holds them with --images DIR."
            )
    elif comp.modality == "tabular":
        return test.reset_index(drop=True)
    else:
        kept.append(comp.text.column)
        require_columns(test, {comp.text.column: "text.column"}, path)
        check_texts(test, comp.text.column, path)
    return test[kept].reset_index(drop=True)
