"""MLflow tracking: one run per stage invocation, nested runs per fold.

A thin layer over MLflow's fluent API that (1) points it at the configured store, with run
artifacts under the project's `mlartifacts/` for local SQLite stores, (2) tags every run with
competition, model, git commit and config hash, and (3) does nothing when tracking is off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from pipeline.io import portable_config, root

log = logging.getLogger(__name__)


def tracking_uri(cfg: DictConfig) -> str:
    """The configured URI, with a relative SQLite path anchored at the project root."""
    uri = cfg.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(root(cfg) / uri[len(prefix):])
    return uri


def git_commit(folder: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config, less where outputs go: equal hashes mean equal settings."""
    plain = OmegaConf.to_container(portable_config(cfg))
    plain.pop("out_dir", None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(plain)).encode()).hexdigest()[:12]


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """{'model': {'lr': 1}} -> {'model.lr': '1'}; lists are kept whole as text."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(data)[:6000]}


class Tracker:
    """Starts MLflow runs for a config; every method is a no-op when tracking is disabled."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.enabled = bool(cfg.tracking.enabled)
        self.stopping: tuple[type[BaseException], ...] = ()  # exceptions that end a run as KILLED
        if not self.enabled:
            return
        os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # MLflow probes git; we tag the commit ourselves
        for name in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri(cfg))
        name = cfg.tracking.experiment
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if tracking_uri(cfg).startswith("sqlite:"):
                location = (root(cfg) / cfg.tracking.artifacts).as_uri()
            experiment_id = mlflow.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        self.experiment_id = experiment_id

    def tags(self, **extra: str) -> dict[str, str]:
        return {
            "competition": self.cfg.competition.name,
            "git_commit": git_commit(root(self.cfg)),
            "config_hash": config_hash(self.cfg),
            **extra,
        }

    @contextmanager
    def run(self, name: str, *, nested: bool = False, params: bool = False, parent: str | None = None,
            resume: str | None = None, **tags: str) -> Iterator[str | None]:
        """A run named `name`, nested under the active run if `nested` or under run id `parent`;
        `resume` reopens an existing run instead. Yields its id.

        The run ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C or one of
        `self.stopping` (a pruned sweep trial: stopped on purpose, not broken).
        """
        if not self.enabled:
            yield None
            return
        if resume:
            active = self.mlflow.start_run(run_id=resume)
        else:
            active = self.mlflow.start_run(run_name=name, experiment_id=self.experiment_id, nested=nested,
                                           parent_run_id=parent, tags=self.tags(**tags))
        try:
            if params:
                config = OmegaConf.to_container(portable_config(self.cfg))
                if tags.get("stage") != "tune":  # sweep settings say nothing about a training run
                    config.pop("tune", None)
                self.log_params(flatten(config))
            yield active.info.run_id
        except BaseException as exc:
            self.mlflow.end_run("KILLED" if isinstance(exc, (KeyboardInterrupt, *self.stopping)) else "FAILED")
            raise
        self.mlflow.end_run("FINISHED")

    def log_params(self, params: dict[str, object]) -> None:
        if self.enabled:
            items = [(k, str(v)[:6000]) for k, v in params.items()]
            for start in range(0, len(items), 100):  # MLflow takes at most 100 params a call
                self.mlflow.log_params(dict(items[start:start + 100]))

    def set_tags(self, **tags: object) -> None:
        if self.enabled:
            self.mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.enabled:
            self.mlflow.log_metrics({k.replace("@", "_at_"): float(v) for k, v in metrics.items()}, step=step)

    def log_artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        if self.enabled:
            for path in paths:
                self.mlflow.log_artifact(str(path), artifact_path=folder)
