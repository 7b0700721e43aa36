"""Tabular competitions: which columns are features, their types, and the typed table models read.

`infer_schema` decides once, from train.csv, each feature's type: numeric where every cell that is
not a missing value reads as a finite number, categorical otherwise (or where the competition
says so, `features.categorical`), with its categories fixed from the training rows. `typed` turns
any file's cells (train.csv, test.csv, the rows `podium predict` is given) into that table: numbers
as float64 with NaN where missing, categories as pandas categoricals whose codes mean the same in
every file; a category never seen in training is missing. The schema travels with the prepared
data and with each trained model, so new rows are read exactly as the training rows were.

Every refusal names the file, the column, example values with their lines, and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline.data.raw import lines_of, require_columns
from pipeline.errors import PodiumError

log = logging.getLogger(__name__)
NUMERIC, CATEGORICAL = "numeric", "categorical"
MOSTLY_NUMERIC = 0.9  # a column this share numbers, the rest text, is a numeric column with stray strings
FEW_TOKENS = 3  # ... and so is a column of numbers (half its cells at least) whose text is this few distinct values


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # numeric | categorical
    categories: tuple[str, ...] = ()  # categorical: the values of the training rows, sorted


@dataclass(frozen=True)
class TableSchema:
    columns: tuple[Column, ...]
    missing: tuple[str, ...]  # cell values read as missing (competition.features.missing)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == CATEGORICAL]

    def to_json(self) -> dict:
        return {
            "missing": list(self.missing),
            "columns": [{"name": c.name, "kind": c.kind, "categories": list(c.categories)} for c in self.columns],
        }

    @classmethod
    def from_json(cls, record: dict) -> TableSchema:
        columns = tuple(Column(c["name"], c["kind"], tuple(c["categories"])) for c in record["columns"])
        return cls(columns, tuple(record["missing"]))


def feature_names(train: pd.DataFrame, comp: DictConfig, path: Path) -> list[str]:
    """Every column of train.csv but the id, the target, the group and `features.drop`, in the file's order."""
    features = comp.features
    named = {
        **{c: "features.drop" for c in features.drop},
        **{c: "features.categorical" for c in features.categorical},
        **{c: "features.numeric" for c in features.numeric},
    }
    require_columns(train, named, path)
    both = sorted(set(features.categorical) & set(features.numeric))
    if both:
        raise PodiumError(
            f"Invalid configuration: column(s) {both} are listed in both competition.features.categorical and "
            f"competition.features.numeric. Keep each in one list, in conf/competition/{comp.name}.yaml."
        )
    not_features = {comp.id_column, comp.target_column, comp.cv.group_column, *features.drop}
    names = [c for c in train.columns if c not in not_features]
    if not names:
        raise PodiumError(
            f"{path} has no feature columns: every column is the id, the target, the group or in "
            f"competition.features.drop ({list(train.columns)}). A tabular competition needs at least one feature."
        )
    return names


def _numbers(cells: pd.Series, missing: frozenset[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells as floats (NaN where missing), which are missing, and which are text (not missing, not a number)."""
    stripped = cells.str.strip()
    is_missing = cells.isin(missing).to_numpy() | stripped.isin(missing).to_numpy()
    values = pd.to_numeric(stripped.where(~is_missing), errors="coerce").to_numpy(dtype=np.float64, copy=True)
    is_text = ~is_missing & ~np.isfinite(values)
    values[is_text] = np.nan
    return values, is_missing, is_text


def infer_schema(train: pd.DataFrame, comp: DictConfig, path: Path) -> TableSchema:
    """Each feature's type and categories, from train.csv's cells (read as text by read_table)."""
    missing = frozenset(comp.features.missing)
    columns = []
    for name in feature_names(train, comp, path):
        cells = train[name]
        _, is_missing, is_text = _numbers(cells, missing)
        if is_missing.all():
            raise PodiumError(
                f"{path}: feature column {name!r} is missing on every row (its cells are all among "
                f"competition.features.missing {sorted(missing)}): there is nothing to learn from it. Drop it: "
                f"add {name!r} to competition.features.drop."
            )
        declared_numeric = name in comp.features.numeric
        numbers = 1 - is_text.sum() / (~is_missing).sum()
        tokens = set(cells[is_text].str.strip())
        # "NA", "None", "-": a numeric column's missing values written as text, not a column of categories
        stray = is_text.any() and (numbers >= MOSTLY_NUMERIC or (numbers >= 0.5 and len(tokens) <= FEW_TOKENS))
        if is_text.any() and (declared_numeric or (stray and name not in comp.features.categorical)):
            raise PodiumError(
                f"{path}: {'numeric' if declared_numeric else 'mostly numeric'} column {name!r} holds text on "
                f"{int(is_text.sum())} row(s), e.g. {sorted(set(cells[is_text]))[:5]}, first on line(s) "
                f"{lines_of(is_text)}. If these mean a missing value, add them to competition.features.missing; "
                f"if the column is a category, list it in competition.features.categorical; else fix the file."
            )
        if is_text.any() or name in comp.features.categorical:
            kept = cells[~is_missing]
            columns.append(Column(name, CATEGORICAL, tuple(sorted(set(kept.str.strip())))))
        else:
            columns.append(Column(name, NUMERIC))
    return TableSchema(tuple(columns), tuple(comp.features.missing))


def typed(frame: pd.DataFrame, schema: TableSchema, path: Path, what: str = "rows") -> pd.DataFrame:
    """`frame`'s feature cells (text) as the typed table of `schema`: float64 and fixed categoricals.

    Refuses a feature column the frame lacks, text in a numeric column and numbers alone where the
    training rows' category was text; a category unseen in training is missing (and said once).
    """
    absent = [c for c in schema.names if c not in frame.columns]
    if absent:
        raise PodiumError(
            f"{path} has no feature column(s) {absent[:10]} that the models were trained on (it has: "
            f"{', '.join(map(str, frame.columns))[:300]}). Every feature of the training rows is needed to predict; "
            f"add the column(s), or drop them from training with competition.features.drop and retrain."
        )
    missing = frozenset(schema.missing)
    out = {}
    for column in schema.columns:
        cells = frame[column.name]
        values, is_missing, is_text = _numbers(cells, missing)
        if column.kind == NUMERIC:
            if is_text.any():
                raise PodiumError(
                    f"{path}: numeric column {column.name!r} holds text on {int(is_text.sum())} row(s), e.g. "
                    f"{sorted(set(cells[is_text]))[:5]}, first on line(s) {lines_of(is_text)}; the training rows "
                    f"hold numbers there. Fix those cells, or add the values to competition.features.missing if "
                    f"they mean missing."
                )
            out[column.name] = values
            continue
        present = ~is_missing
        if present.any() and not is_text.any() and all(_text_category(c) for c in column.categories):
            raise PodiumError(
                f"{path}: categorical column {column.name!r} holds only numbers here (e.g. "
                f"{cells[present].iloc[:3].tolist()}), but text categories in the training rows (e.g. "
                f"{list(column.categories[:3])}): the column holds another kind of value in this file. Check that "
                f"the columns of {path.name} are the training file's, in meaning as well as in name."
            )
        stripped = cells.str.strip().where(present)
        categorical = _categorical(stripped, column.categories)
        unseen = present & np.asarray(categorical.isna())
        if unseen.any():
            log.info(
                "%s: column %r has %d %s row(s) with categories unseen in training (e.g. %s): read as missing",
                path.name,
                column.name,
                int(unseen.sum()),
                what,
                sorted(set(stripped[unseen]))[:3],
            )
        out[column.name] = categorical
    return pd.DataFrame(out, index=range(len(frame)))


def _categorical(values: pd.Series, categories: tuple[str, ...]) -> pd.Categorical:
    """`values` as codes of `categories`: a value among them gets its code, any other (missing, unseen) is missing."""
    codes = pd.Index(categories, dtype=object).get_indexer(values.astype(object))
    return pd.Categorical.from_codes(codes, categories=list(categories))


def _text_category(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return True
    return False


def describe(table: pd.DataFrame, schema: TableSchema) -> list[list[str]]:
    """The schema as rows of a table a person reads: column, type, missing share, distinct values."""
    rows = []
    for column in schema.columns:
        values = table[column.name]
        rows.append([column.name, column.kind, f"{values.isna().mean():.1%}", f"{values.nunique(dropna=True):,}"])
    return rows


def with_categories(table: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """A feature table read back from parquet, its categoricals given exactly the schema's categories (codes
    mean the same in every file, whatever categories a file's rows happen to hold)."""
    for column in schema.columns:
        if column.kind == CATEGORICAL:
            table[column.name] = _categorical(table[column.name], column.categories)
    return table
