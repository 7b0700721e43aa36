"""Plain-text tables for results printed at the end of each stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned text table with a rule under the header."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def duration(seconds: float | None) -> str:
    """`42 s`, `12.5 min`, `1.6 h`."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def board_table(board: Sequence[dict], metric: str) -> str:
    """The leaderboard after `ensemble` and `submit`: a line per member and one for the blend, with
    each fold's out-of-fold score, the CV, the blend weight, the local leaderboard score (when
    known) and the time taken."""
    n_folds = max((len(row.get("folds") or []) for row in board), default=0)
    with_lb = any(row.get("local_leaderboard") is not None for row in board)
    headers = [
        "",
        *(f"fold {k}" for k in range(n_folds)),
        f"CV {metric}",
        "weight",
        *(["local LB"] if with_lb else []),
        "time",
    ]
    rows = []
    for row in board:
        folds = list(row.get("folds") or [])
        rows.append(
            [
                row["name"],
                *folds,
                *[None] * (n_folds - len(folds)),
                row.get("cv"),
                row.get("weight"),
                *([row.get("local_leaderboard")] if with_lb else []),
                duration(row.get("seconds")),
            ]
        )
    return table(headers, rows)
