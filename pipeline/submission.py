"""Submission files: built from predictions in the sample submission's shape, validated, scored.

`validate_submission` lists every way a file departs from the sample submission (ids, order,
columns, dtypes, NaN/inf, value range, row count); `score_submission` is the local leaderboard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from pipeline.data import target
from pipeline.data.raw import blank, expected_submission_columns, lines_of
from pipeline.errors import PodiumError
from pipeline.metrics import get_metric


def build_submission(test_ids: np.ndarray, pred: np.ndarray, sample: pd.DataFrame, comp: DictConfig) -> pd.DataFrame:
    """Predictions (rows in `test_ids` order) as a submission with the sample's ids, order and columns."""
    columns = expected_submission_columns(comp)
    if not np.isfinite(pred).all():
        # checked here: argmax would quietly turn NaN probabilities into a label
        raise PodiumError(
            f"{int((~np.isfinite(pred)).any(axis=1).sum())} test row(s) have NaN or infinite predictions: the model "
            f"diverged. Retrain it (a lower learning rate, gradient clipping) before submitting."
        )
    by_id = pd.Series(np.arange(len(test_ids)), index=test_ids)
    order = by_id.reindex(sample[comp.id_column].to_numpy())
    if order.isna().any():
        missing = list(sample[comp.id_column][order.isna().to_numpy()][:5])
        raise PodiumError(
            f"No prediction for sample-submission id(s) {missing}: the predictions come from another test set. Rerun the pipeline."
        )
    pred = pred[order.to_numpy(dtype=int)]
    out = pd.DataFrame({comp.id_column: sample[comp.id_column].to_numpy()})
    if comp.task == "regression":
        out[comp.target_column] = target.inverse(pred[:, 0], target.of(comp))
    elif comp.submission.format == "labels":
        out[comp.target_column] = np.asarray(comp.classes)[pred.argmax(axis=1)]
    elif comp.task == "binary":
        out[comp.target_column] = pred[:, 1]
    else:
        out[list(columns[1:])] = pred / pred.sum(axis=1, keepdims=True)
    return out[columns]


def validate_submission(sub: pd.DataFrame, sample: pd.DataFrame, comp: DictConfig) -> list[str]:
    """Every problem of `sub` against the sample submission; an empty list means valid."""
    problems: list[str] = []
    id_col = comp.id_column
    if list(sub.columns) != list(sample.columns):
        problems.append(f"columns are {list(sub.columns)}, expected {list(sample.columns)} (same names, same order)")
        return problems
    if len(sub) != len(sample):
        problems.append(f"{len(sub)} rows, expected {len(sample)}")
    ids, sample_ids = sub[id_col].astype(str), sample[id_col].astype(str)
    if ids.duplicated().any():
        problems.append(f"duplicated ids, e.g. {list(ids[ids.duplicated()][:5])}")
    if set(ids) != set(sample_ids):
        problems.append(
            f"ids differ from the sample: missing {sorted(set(sample_ids) - set(ids))[:5]}, unexpected {sorted(set(ids) - set(sample_ids))[:5]}"
        )
    elif len(ids) == len(sample_ids) and not (ids.to_numpy() == sample_ids.to_numpy()).all():
        problems.append("ids are not in the sample submission's order")
    values = sub.drop(columns=[id_col])
    if comp.task != "regression" and comp.submission.format == "labels":
        col = values[comp.target_column]
        empty = blank(col)
        if empty.any():
            problems.append(f"{int(empty.sum())} empty label(s) in column {comp.target_column!r}")
        unknown = sorted(set(col[~empty].astype(str)) - set(comp.classes))
        if unknown:
            problems.append(
                f"unknown label(s) {unknown[:5]} in column {comp.target_column!r}; valid: {list(comp.classes)}"
            )
        return problems
    numbers = {}
    for column in values.columns:
        numbers[column] = pd.to_numeric(values[column], errors="coerce")
        text = numbers[column].isna() & ~blank(values[column])  # cells that hold something other than a number
        if text.any():
            problems.append(
                f"column {column!r} holds non-numbers, e.g. {list(values[column][text].unique()[:5])}, expected numbers"
            )
    if problems:
        return problems
    array = pd.DataFrame(numbers).to_numpy(dtype=float)
    if not np.isfinite(array).all():
        problems.append(f"{int((~np.isfinite(array)).sum())} NaN or infinite value(s) (an empty cell counts as NaN)")
    elif comp.task != "regression":
        if array.min() < 0 or array.max() > 1:
            problems.append(f"probabilities outside [0, 1] (min {array.min():.4g}, max {array.max():.4g})")
        if comp.task == "multiclass" and not np.allclose(array.sum(axis=1), 1.0, atol=1e-3):
            problems.append("class probabilities of a row do not sum to 1")
    return problems


def validate_solution(solution: pd.DataFrame, sub: pd.DataFrame, comp: DictConfig) -> list[str]:
    """Every problem of a solution file (the truth a submission is scored against); empty means usable.

    It must cover exactly the submission's ids, once each, with the target column (or one column
    per class) holding a valid label (a number, for regression) on every row.
    """
    problems: list[str] = []
    id_col = comp.id_column
    ids = solution[id_col].astype(str)
    if ids.duplicated().any():
        problems.append(
            f"{int(ids.duplicated().sum())} duplicated id(s), e.g. {list(ids[ids.duplicated()].unique()[:5])}"
        )
    wanted, have = set(sub[id_col].astype(str)), set(ids)
    if wanted != have:
        problems.append(
            f"its ids differ from the submission's: {len(wanted - have)} submission id(s) have no truth "
            f"(e.g. {sorted(wanted - have)[:5]}) and {len(have - wanted)} solution id(s) are not in the "
            f"submission (e.g. {sorted(have - wanted)[:5]})"
        )
    one_hot = (
        comp.task != "regression" and comp.target_column not in solution and all(c in solution for c in comp.classes)
    )
    if comp.target_column not in solution and not one_hot:
        return [
            *problems,
            f"no column {comp.target_column!r} (competition.target_column); it has {list(solution.columns)}",
        ]
    columns = list(comp.classes) if one_hot else [comp.target_column]
    for column in columns:
        empty = blank(solution[column])
        if empty.any():
            problems.append(
                f"column {column!r} is empty on {int(empty.sum())} row(s), first on line(s) {lines_of(empty)}"
            )
    if problems:
        return problems
    if comp.task == "regression" or one_hot:
        for column in columns:
            bad = ~np.isfinite(pd.to_numeric(solution[column], errors="coerce").to_numpy(dtype=float))
            if bad.any():
                problems.append(
                    f"column {column!r} holds {int(bad.sum())} value(s) that are not finite numbers, e.g. "
                    f"{list(solution[column][bad][:5])}, first on line(s) {lines_of(bad)}"
                )
    else:
        unknown = sorted(set(solution[comp.target_column].astype(str)) - set(comp.classes))
        if unknown:
            problems.append(
                f"label(s) {unknown[:5]} in column {comp.target_column!r} are not among the competition's "
                f"classes {list(comp.classes)}"
            )
    return problems


def check_submission(sub: pd.DataFrame, sample: pd.DataFrame, comp: DictConfig, where: str, outcome: str = "") -> None:
    """Raise a PodiumError listing all of `validate_submission`'s problems (then `outcome`, if any)."""
    problems = validate_submission(sub, sample, comp)
    if problems:
        raise PodiumError(
            f"Invalid submission {where}: " + "; ".join(problems) + f".{' ' + outcome if outcome else ''}"
        )


def _predictions_from(frame: pd.DataFrame, comp: DictConfig) -> np.ndarray:
    """A (valid) submission's values in model space: (N, classes) probabilities, or (N,) values (transformed
    as the models' target was, `competition.target.transform`)."""
    if comp.task == "regression":
        values = pd.to_numeric(frame[comp.target_column]).to_numpy(dtype=float)
        return target.forward(values, target.of(comp), f"the submission's column {comp.target_column!r}")
    if comp.submission.format == "labels":
        index = {c: i for i, c in enumerate(comp.classes)}
        labels = frame[comp.target_column].astype(str).map(index).to_numpy(dtype=int)
        return np.eye(len(comp.classes))[labels]
    if comp.task == "binary":
        p = pd.to_numeric(frame[comp.target_column]).to_numpy(dtype=float)
        return np.stack([1 - p, p], axis=1)
    return frame[list(comp.classes)].apply(pd.to_numeric).to_numpy(dtype=float)


def _truth_from(solution: pd.DataFrame, comp: DictConfig) -> np.ndarray:
    """A (valid) solution's truth: class indices, or values for regression."""
    if comp.task == "regression":
        values = pd.to_numeric(solution[comp.target_column]).to_numpy(dtype=float)
        return target.forward(values, target.of(comp), f"the solution's column {comp.target_column!r}")
    if comp.target_column in solution:
        index = {c: i for i, c in enumerate(comp.classes)}
        return solution[comp.target_column].astype(str).map(index).to_numpy(dtype=int)
    return solution[list(comp.classes)].apply(pd.to_numeric).to_numpy(dtype=float).argmax(axis=1)


def check_solution(solution: pd.DataFrame, sub: pd.DataFrame, comp: DictConfig, where: str) -> None:
    """Raise a PodiumError listing every problem `validate_solution` finds in the solution file `where`."""
    problems = validate_solution(solution, sub, comp)
    if problems:
        raise PodiumError(
            f"Unusable solution file {where}: " + "; ".join(problems) + ". Scoring against it would give "
            "a meaningless number: fix the file, or pass the right one with --solution."
        )


def score_submission(sub: pd.DataFrame, solution: pd.DataFrame, comp: DictConfig, metric: str | None = None) -> float:
    """The competition metric (or `metric`) of a valid submission against a solution checked by `check_solution`."""
    id_col = comp.id_column
    solution = solution.assign(**{id_col: solution[id_col].astype(str)})
    merged = solution[[id_col]].merge(
        sub.assign(**{id_col: sub[id_col].astype(str)}), on=id_col, how="left", validate="one_to_one"
    )
    truth = _truth_from(solution, comp)
    pred = _predictions_from(merged, comp)  # merged keeps the solution's row order
    return get_metric(metric or comp.metric)(truth, pred)
