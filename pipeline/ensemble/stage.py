"""Stage 3, ensemble: blend the members' out-of-fold predictions, apply the blend to test.

Every method is scored twice: in-sample (fit on all out-of-fold rows, scored on the same rows,
which flatters any method that learns) and nested (fit on all folds but one, scored on the
held-out fold, for each fold in turn). `ensemble.method=auto` picks by the nested score. The
ensemble's oof.parquet holds the nested held-out predictions, so its CV is the honest figure;
test.parquet comes from the blend fit on every row; blend/ keeps that blend for `podium predict`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline import io
from pipeline.ensemble.members import candidate_folders, load_members
from pipeline.ensemble.methods import METHODS, Blend, Problem, check_method, make_blend, usable_methods
from pipeline.errors import PodiumError
from pipeline.inference.blend import member_of, save_blend
from pipeline.inference.fitted import config_targets
from pipeline.metrics import get_metric, report_scores, score_predictions
from pipeline.predictions import Predictions, file_hashes

log = logging.getLogger(__name__)


@dataclass
class MethodScore:
    method: str
    in_sample: float  # fit and scored on the same rows
    nested: float  # fit on the other folds, scored on each held-out fold
    held_out: np.ndarray  # the nested predictions, row for row
    blend: Blend  # fit on every row: what the test set gets


@dataclass
class EnsembleResult:
    method: str  # the method used (auto's choice)
    weights: dict[str, float]
    member_scores: dict[str, float]
    cv_score: float  # nested
    in_sample: float
    methods: list[MethodScore] = field(default_factory=list)
    out_dir: Path | None = None
    board: list[dict] = field(default_factory=list)  # each member's fold scores, CV, weight and time; the ensemble last


def evaluate(name: str, problem: Problem, oofs: np.ndarray, target: np.ndarray, folds: np.ndarray) -> MethodScore:
    """Fit `name` on all rows (in-sample score, test blend) and once per held-out fold (nested score)."""
    metric, task = problem.metric, problem.task
    full = make_blend(name, problem).fit(oofs, target)
    held_out = np.zeros_like(oofs[0])
    for fold in np.unique(folds):
        rows = folds == fold
        held_out[rows] = make_blend(name, problem).fit(oofs[:, ~rows], target[~rows]).apply(oofs[:, rows])
    return MethodScore(
        name,
        score_predictions(metric, target, full.apply(oofs), task),
        score_predictions(metric, target, held_out, task),
        held_out,
        full,
    )


def methods_to_try(cfg: DictConfig, metric, task: str) -> list[str]:
    """The configured method, or for `auto` every usable candidate method; refusals before any work."""
    s = cfg.ensemble
    requested = list(s.candidates) if s.method == "auto" else [s.method]
    unknown = [m for m in requested if m not in METHODS]
    if unknown:
        key = "ensemble.candidates" if s.method == "auto" else "ensemble.method"
        raise PodiumError(f"{key} names unknown method(s) {unknown}; valid methods are auto, {', '.join(METHODS)}.")
    if s.method != "auto":
        check_method(s.method, metric)
        return requested
    usable = usable_methods(requested, metric, task)
    if not usable:
        raise PodiumError(
            f"None of ensemble.candidates={requested} suits the metric {metric.name}. Add mean or hill_climb."
        )
    return usable


def ensemble(cfg: DictConfig) -> EnsembleResult:
    """Blend the configured members and write the ensemble's predictions and scores to `out_dir`."""
    started = time.perf_counter()
    comp, metric = cfg.competition, get_metric(cfg.competition.metric)
    tried = methods_to_try(cfg, metric, comp.task)
    folders = candidate_folders(cfg)
    members = load_members(folders, comp)
    names = list(members)
    first = members[names[0]]
    oofs = np.stack([members[n].oof for n in names])
    tests = np.stack([members[n].test for n in names])
    member_scores = {n: score_predictions(metric, first.target, members[n].oof, comp.task) for n in names}

    problem = Problem(metric, comp.task, cfg.ensemble)
    scores: list[MethodScore] = []
    for n, name in enumerate(tried, 1):
        scores.append(evaluate(name, problem, oofs, first.target, first.folds))
        log.info(
            "ensemble %d/%d %s: in-sample %.4f, nested %.4f",
            n,
            len(tried),
            name,
            scores[-1].in_sample,
            scores[-1].nested,
        )
    chosen = scores[0]
    for s in scores[1:]:  # ties keep the earlier (simpler) method
        chosen = s if metric.better(s.nested, chosen.nested) else chosen
    weights = chosen.blend.describe(names)
    test = chosen.blend.apply(tests)
    reported = report_scores(comp, first.target, chosen.held_out)
    board = [
        board_row(name, members[name], metric, comp.task, weights.get(name), _seconds(folders[name])) for name in names
    ]
    board.append(
        board_row(
            f"ensemble ({chosen.method}, nested)",
            Predictions(first.oof_ids, first.folds, first.target, chosen.held_out, first.test_ids, test),
            metric,
            comp.task,
            None,
            time.perf_counter() - started,
        )
    )

    kept = [member_of(n, folders[n], io.root(cfg)) for n in names]
    for member in kept:  # a sweep trial's folder, say: blended now, refused by podium predict and bundle
        if not (io.root(cfg) / member.folder / "fitted" / "fitted.json").is_file():
            log.warning(
                "member %s (%s) keeps no fitted models: this ensemble's submission stands, but `podium predict` "
                "and `podium bundle` will refuse it. Train it with `podium train` to keep them.",
                member.name,
                member.folder,
            )
    out = io.out_dir(cfg)
    from pipeline.provenance import provenance
    from pipeline.tracking import Tracker

    root = io.root(cfg)
    metrics = {
        "method": chosen.method,
        "requested": cfg.ensemble.method,
        "metric": metric.name,
        "cv": chosen.nested,
        "cv_in_sample": chosen.in_sample,
        "report": reported,
        "methods": {s.method: {"in_sample": s.in_sample, "nested": s.nested} for s in scores},
        "weights": weights,
        "members": member_scores,
        "sources": {n: str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for n, p in folders.items()},
        "rounds": getattr(chosen.blend, "history", []),
        "board": board,
    }
    record = provenance(root, {f"member {n}": p for n, p in folders.items()})
    # Every file into a staging folder swapped in as one unit: a kill leaves the old blend or the new one.
    with io.staging_dir(out) as tmp:
        files = Predictions(first.oof_ids, first.folds, first.target, chosen.held_out, first.test_ids, test).save(
            tmp, comp
        )
        io.write_config(tmp / "config.yaml", cfg)
        io.write_json(tmp / "provenance.json", record)
        plots = [
            p.relative_to(tmp)
            for p in ensemble_plots(tmp / "plots", {n: members[n].oof for n in names}, weights, chosen.method)
        ]
        io.write_json(tmp / "metrics.json", {**metrics, "files": file_hashes(files)})
        save_blend(  # for podium predict and podium bundle
            chosen.blend,
            kept,
            tmp / "blend",
            config_targets(OmegaConf.to_container(cfg.ensemble)),
            io.root(cfg),
        )

    tracker = Tracker.of(cfg)
    with tracker.run("ensemble", params=True, stage="ensemble", model="ensemble"):
        tracker.log_provenance(record)
        tracker.log_metrics(
            {
                f"cv_{metric.name}": chosen.nested,
                f"cv_in_sample_{metric.name}": chosen.in_sample,
                **{f"cv_{k}": v for k, v in reported.items()},
                **{f"nested_{s.method}": s.nested for s in scores},
                **{f"in_sample_{s.method}": s.in_sample for s in scores},
                **{f"weight_{n}": w for n, w in weights.items() if np.isfinite(w)},
                **{f"member_cv_{n}": s for n, s in member_scores.items()},
            }
        )
        tracker.log_artifacts([out / "oof.parquet", out / "test.parquet", out / "config.yaml", out / "metrics.json"])
        tracker.set_tags(method=chosen.method)
        tracker.describe(
            f"{chosen.method} blend of {', '.join(names)} on {comp.name}: nested CV {metric.name} "
            f"{chosen.nested:.4f} (in-sample {chosen.in_sample:.4f})."
        )
        tracker.log_artifacts([out / p for p in plots], folder="plots")
    return EnsembleResult(chosen.method, weights, member_scores, chosen.nested, chosen.in_sample, scores, out, board)


def board_row(name: str, preds: Predictions, metric, task: str, weight: float | None, seconds: float | None) -> dict:
    """One line of the leaderboard table: the score of each fold's out-of-fold rows, the CV, weight and time."""
    folds = [
        score_predictions(metric, preds.target[preds.folds == k], preds.oof[preds.folds == k], task)
        for k in np.unique(preds.folds)
    ]
    return {
        "name": name,
        "folds": folds,
        "cv": score_predictions(metric, preds.target, preds.oof, task),
        "weight": weight if weight is None or np.isfinite(weight) else None,
        "seconds": None if seconds is None else round(seconds, 1),
    }


def _seconds(folder: Path) -> float | None:
    """The training time a member's metrics.json records (None for a folder without one)."""
    path = folder / "metrics.json"
    return json.loads(path.read_text()).get("seconds") if path.is_file() else None


def ensemble_plots(folder: Path, oofs: dict[str, np.ndarray], weights: dict[str, float], method: str) -> list[Path]:
    """The members' out-of-fold correlation heat-map and the blend's weights (when the method has weights)."""
    from pipeline.plots import ensemble_weights, member_correlation

    written = [member_correlation(oofs, "members' out-of-fold correlation", folder / "member_correlation.png")]
    bars = ensemble_weights(weights, f"{method} blend: weight per member", folder / "weights.png")
    return written + ([bars] if bars else [])  # no weights (stacking): no bars
