"""Stage 4, submit: the ensemble's test predictions as a validated submission file.

Writes submissions/<competition>/submission.csv in the sample submission's shape, refusing to
write an invalid one, and scores it against data/<competition>/private/solution.csv when that
exists (the local leaderboard). Scores go to `out_dir`/metrics.json and MLflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from pipeline import io
from pipeline.data.raw import read_table
from pipeline.errors import PodiumError
from pipeline.predictions import load_predictions
from pipeline.provenance import provenance
from pipeline.submission import build_submission, check_solution, check_submission, score_submission

log = logging.getLogger(__name__)


@dataclass
class SubmitResult:
    path: Path
    rows: int
    cv_score: float | None
    leaderboard_score: float | None
    board: list[dict] = field(default_factory=list)  # CV beside local leaderboard: each member, then the submission


def submission_path(cfg: DictConfig) -> Path:
    return io.root(cfg) / cfg.paths.submissions / cfg.competition.name / "submission.csv"


def submit(cfg: DictConfig, source: Path | None = None) -> SubmitResult:
    """Write and validate the submission from `source` (default: the pipeline's ensemble folder)."""
    comp = cfg.competition
    source = Path(source or io.root(cfg) / cfg.paths.outputs / comp.name / "ensemble")
    preds = load_predictions(source, comp)
    folder = io.raw_dir(cfg)
    sample = read_table(folder / comp.files.sample_submission, comp.id_column, "sample submission")
    sub = build_submission(preds.test_ids, preds.test, sample, comp)
    target = submission_path(cfg)
    check_submission(sub, sample, comp, str(target), outcome="Nothing was written.")

    leaderboard, leaderboard_report, solution = None, {}, None
    solution_path = (folder / comp.files.solution).resolve() if comp.files.solution else None
    if solution_path and solution_path.is_file():
        solution = read_table(solution_path, comp.id_column, "solution file")
        check_solution(solution, sub, comp, str(solution_path))
        leaderboard = score_submission(sub, solution, comp)
        leaderboard_report = {name: score_submission(sub, solution, comp, name) for name in comp.report_metrics}
    cv_path = source / "metrics.json"
    source_metrics = json.loads(cv_path.read_text()) if cv_path.is_file() else {}
    cv_score, cv_report = source_metrics.get("cv"), source_metrics.get("report", {})
    board = score_board(cfg, source, source_metrics, sample, solution, leaderboard)

    io.write_csv(target, sub)
    from pipeline.data.identity import file_sha256

    metrics = {
        "metric": comp.metric,
        "cv": cv_score,
        "local_leaderboard": leaderboard,
        "report": {
            name: {"cv": cv_report.get(name), "local_leaderboard": leaderboard_report.get(name)}
            for name in comp.report_metrics
        },
        "cv_in_sample": source_metrics.get("cv_in_sample"),
        "board": board,
        "rows": len(sub),
        "source": str(source.relative_to(io.root(cfg)) if source.is_relative_to(io.root(cfg)) else source),
        "submission": str(target.relative_to(io.root(cfg)) if target.is_relative_to(io.root(cfg)) else target),
        "submission_sha256": file_sha256(target),
    }  # which submission.csv these scores are of
    out = io.out_dir(cfg)
    record = provenance(
        io.root(cfg),
        {"predictions": source / "test.parquet", "sample submission": folder / comp.files.sample_submission},
    )
    with io.staging_dir(out) as tmp:  # the stage's folder as one unit
        io.write_config(tmp / "config.yaml", cfg)
        io.write_json(tmp / "provenance.json", record)
        io.write_json(tmp / "metrics.json", metrics)

    from pipeline.tracking import Tracker

    tracker = Tracker.of(cfg)
    with tracker.run("submission", stage="submit", model="submission"):
        tracker.log_provenance(record)
        scores = {
            f"cv_{comp.metric}": cv_score,
            f"leaderboard_{comp.metric}": leaderboard,
            f"cv_in_sample_{comp.metric}": source_metrics.get("cv_in_sample"),
            **{f"member_leaderboard_{row['name']}": row["local_leaderboard"] for row in board[:-1]},
            **{f"cv_{k}": v for k, v in cv_report.items()},
            **{f"leaderboard_{k}": v for k, v in leaderboard_report.items()},
        }
        tracker.log_metrics({k: v for k, v in scores.items() if v is not None})
        tracker.log_artifacts([target, out / "config.yaml", out / "metrics.json"])
    return SubmitResult(target, len(sub), cv_score, leaderboard, board)


def score_board(
    cfg: DictConfig, source: Path, source_metrics: dict, sample, solution, leaderboard: float | None
) -> list[dict]:
    """The ensemble's board (each member's fold scores, CV, weight and time; the blend last) with the
    local leaderboard score beside each line: what the member's own submission would get.

    Only reported, never used to choose anything: choosing by the leaderboard would overfit it.
    """
    comp, root = cfg.competition, io.root(cfg)
    board = [dict(row) for row in source_metrics.get("board", [])]
    if not board:  # a single model's folder as the source: its own line
        board = [
            {
                "name": source.name,
                "folds": list(source_metrics.get("folds", {}).values()),
                "cv": source_metrics.get("cv"),
                "weight": None,
                "seconds": source_metrics.get("seconds"),
            }
        ]
    sources = source_metrics.get("sources", {})
    for row in board[:-1]:
        folder = root / sources[row["name"]] if row["name"] in sources else None
        row["local_leaderboard"] = None
        if solution is not None and folder is not None and (folder / "test.parquet").is_file():
            preds = load_predictions(folder, comp)
            row["local_leaderboard"] = score_submission(
                build_submission(preds.test_ids, preds.test, sample, comp), solution, comp
            )
    board[-1]["local_leaderboard"] = leaderboard
    return board


def score_file(cfg: DictConfig, submission: Path, solution: Path | None = None) -> dict[str, float]:
    """Validate any submission file against the sample submission and score it against a solution: the
    competition's metric, then each of its `report_metrics`."""
    comp = cfg.competition
    folder = io.raw_dir(cfg)
    sample = read_table(folder / comp.files.sample_submission, comp.id_column, "sample submission")
    sub = read_table(Path(submission), comp.id_column, "submission")
    check_submission(sub, sample, comp, str(submission))
    solution = Path(solution) if solution else (folder / comp.files.solution if comp.files.solution else None)
    if solution is None or not solution.is_file():
        raise PodiumError(f"No solution file to score against ({solution}). Pass --solution PATH.")
    truth = read_table(solution, comp.id_column, "solution file")
    check_solution(truth, sub, comp, str(solution))
    return {
        comp.metric: score_submission(sub, truth, comp),
        **{name: score_submission(sub, truth, comp, name) for name in comp.report_metrics if name != comp.metric},
    }
