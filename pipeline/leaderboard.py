"""The project's leaderboard: every competition's models, ensemble and submission in one table.

Read from the metrics.json files the stages write (outputs/<competition>/{models/*,ensemble,
submission}/), so it costs nothing and works on a `dvc pull`-ed checkout without MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path

NO_SOLUTION = "no solution file"  # the competition has no held-out labels (files.solution): nothing to score on
HEADERS = ["competition", "model", "metric", "CV", "CV (reported)", "weight", "local LB", "LB (reported)", "train s"]


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _reported(scores: dict, key: str | None = None) -> str:
    items = {k: (v.get(key) if key else v) for k, v in scores.items()} if scores else {}
    return ", ".join(f"{k} {v:.4f}" for k, v in items.items() if v is not None) or "-"


def _scored_lb(submission: dict, root: Path, name: str) -> float | str | None:
    """The submission's local leaderboard score, if submission.csv is still the file it was computed on."""
    from pipeline.data.identity import file_sha256

    if submission and submission.get("local_leaderboard") is None:
        return NO_SOLUTION
    if "submission_sha256" not in submission:
        return submission.get("local_leaderboard")
    path = root / submission.get("submission", f"submissions/{name}/submission.csv")
    if not path.is_file():
        return "stale: submission.csv is gone"
    if file_sha256(path) != submission["submission_sha256"]:
        return "stale: submission.csv changed since scored"
    return submission.get("local_leaderboard")


def leaderboard_rows(outputs: Path, root: Path) -> list[list]:
    """One row per member, ensemble and submission of each competition with outputs under `outputs`.

    Members are read from where the ensemble found them (paths relative to the project `root`).
    """
    rows: list[list] = []
    for folder in sorted(p for p in outputs.iterdir() if p.is_dir()) if outputs.is_dir() else []:
        ensemble, submission = (
            _read(folder / "ensemble" / "metrics.json"),
            _read(folder / "submission" / "metrics.json"),
        )
        weights = ensemble.get("weights", {})
        sources = ensemble.get("sources") or {p.name: str(p) for p in sorted((folder / "models").glob("*"))}
        member_lb = {row["name"]: row["local_leaderboard"] for row in submission.get("board", [])}
        lb = _scored_lb(submission, root, folder.name)
        for name, path in sources.items():
            m = _read(root / path / "metrics.json")
            if m:
                rows.append(
                    [
                        folder.name,
                        name,
                        m["metric"],
                        m["cv"],
                        _reported(m.get("report", {})),
                        weights.get(name),
                        NO_SOLUTION if lb == NO_SOLUTION else member_lb.get(name),
                        "-",
                        round(m["seconds"]) if m.get("seconds") is not None else None,
                    ]
                )
        if ensemble:
            rows.append(
                [
                    folder.name,
                    f"ensemble ({ensemble['method']}, nested CV)",
                    ensemble["metric"],
                    ensemble["cv"],
                    _reported(ensemble.get("report", {})),
                    None,  # the blend itself carries no weight (its members' sum to 1)
                    lb,
                    "-" if isinstance(lb, str) else _reported(submission.get("report", {}), "local_leaderboard"),
                    None,
                ]
            )
    return rows


def bundle_lines(root: Path) -> list[str]:
    """One line per competition bundle under bundles/: its size and the manifest's file count (`podium bundle`)."""
    lines = []
    for manifest in sorted((root / "bundles").glob("*/manifest.json")):
        made = _read(manifest)
        lines.append(
            f"bundle {made.get('competition', manifest.parent.name)}: {len(made.get('files', {}))} files, "
            f"{made.get('total_bytes', 0) / 1e6:.1f} MB ({manifest.parent.relative_to(root)}/predict.py)"
        )
    return lines


def markdown(headers: list[str], rows: list[list]) -> str:
    from pipeline.report import fmt

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
