"""MLflow tracking: one run per stage invocation, nested runs per fold.

A thin layer over MLflow's fluent API that (1) points it at the configured store, with run
artifacts under the project's `mlartifacts/` for local SQLite stores, (2) tags every run with
competition, model, git commit (and whether the tree was dirty) and config hash, and (3) does nothing when tracking is off.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.io import portable_config, root
from pipeline.secrets import redact

log = logging.getLogger(__name__)


def tracking_uri(cfg: DictConfig) -> str:
    """The configured URI, with a relative SQLite path anchored at the project root."""
    uri = cfg.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(root(cfg) / uri[len(prefix) :])
    return uri


@contextmanager
def _first_use_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a local SQLite store (mlflow.db.lock) while it is opened."""
    prefix = "sqlite:///"
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent first use stays the user's care
        fcntl = None
    if not uri.startswith(prefix) or fcntl is None:
        yield
        return
    lock_path = Path(uri[len(prefix) :] + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved config, less where outputs go and whether to resume: equal hashes mean
    equal settings (and a shared checkpoint folder)."""
    plain = OmegaConf.to_container(portable_config(cfg))
    plain.pop("out_dir", None)
    plain.get("train", {}).pop("resume", None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(plain)).encode()).hexdigest()[:12]


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """{'model': {'lr': 1}} -> {'model.lr': '1'}; lists are kept whole as text."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(data)[:6000]}


@dataclass(frozen=True)
class TrackingSettings:
    """What the tracker needs of a command's config, read once by `Tracker.of`."""

    enabled: bool
    uri: str  # the store, a relative SQLite path anchored at the project root
    experiment: str
    artifacts: Path | None  # run artifacts of a local SQLite store; None: the server's own
    root: Path  # the project (its git state tags every run)
    competition: str
    config_hash: str
    config: dict = field(default_factory=dict)  # the command's resolved config, logged as a run's params

    @classmethod
    def of(cls, cfg: DictConfig) -> TrackingSettings:
        uri = tracking_uri(cfg)
        return cls(
            enabled=bool(cfg.tracking.enabled),
            uri=uri,
            experiment=cfg.tracking.experiment,
            artifacts=root(cfg) / cfg.tracking.artifacts if uri.startswith("sqlite:") else None,
            root=root(cfg),
            competition=cfg.competition.name,
            config_hash=config_hash(cfg),
            config=OmegaConf.to_container(portable_config(cfg)),
        )


class Tracker:
    """Starts MLflow runs; every method is a no-op when tracking is disabled."""

    def __init__(self, settings: TrackingSettings, enabled: bool = True):
        """`enabled=False` (a DDP process other than rank 0) turns it off whatever `tracking.enabled` says."""
        self.settings = settings
        self.enabled = enabled and settings.enabled
        self.stopping: tuple[type[BaseException], ...] = ()  # exceptions that end a run as KILLED
        if not self.enabled:
            return
        os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # MLflow probes git; we tag the commit ourselves
        # With a tracking server MLflow prints two links per run (a flood with nested fold runs),
        # and the links carry any password in the tracking URI.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        for name in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(settings.uri)  # only points at the store: nothing is created before a run

    @classmethod
    def of(cls, cfg: DictConfig, enabled: bool = True) -> Tracker:
        """The tracker of a command's config (the stages' way in)."""
        return cls(TrackingSettings.of(cfg), enabled)

    @cached_property
    def experiment_id(self) -> str:
        """The experiment's id, created on first use: a command refused before its first run leaves the store as it was."""
        mlflow, settings = self.mlflow, self.settings
        mlflow.set_tracking_uri(settings.uri)
        name = settings.experiment
        # Processes starting together on a new SQLite store would each create its tables (and the
        # experiment): all but one fail. One at a time, the first creates, the others find them.
        with _first_use_lock(settings.uri):
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                location = settings.artifacts.as_uri() if settings.artifacts is not None else None
                return mlflow.create_experiment(name, artifact_location=location)
            return experiment.experiment_id

    @cached_property
    def git(self) -> dict[str, object]:
        from pipeline.provenance import git_state

        return git_state(self.settings.root)

    def tags(self, **extra: str) -> dict[str, str]:
        return {
            "competition": self.settings.competition,
            "git_commit": self.git["commit"],
            "git_dirty": str(self.git["dirty"]),
            "config_hash": self.settings.config_hash,
            **extra,
        }

    @contextmanager
    def run(
        self,
        name: str,
        *,
        nested: bool = False,
        params: bool = False,
        parent: str | None = None,
        resume: str | None = None,
        **tags: str,
    ) -> Iterator[str | None]:
        """A run named `name`, nested under the active run if `nested` or under run id `parent`;
        `resume` reopens an existing run instead. Yields its id.

        The run ends FINISHED, FAILED on an exception, or KILLED on Ctrl-C or one of
        `self.stopping` (a pruned sweep trial: stopped on purpose, not broken).
        """
        if not self.enabled:
            yield None
            return
        experiment_id = self.experiment_id  # also points MLflow at the store
        if resume:
            active = self.mlflow.start_run(run_id=resume)
        else:
            active = self.mlflow.start_run(
                run_name=name,
                experiment_id=experiment_id,
                nested=nested,
                parent_run_id=parent,
                tags={k: redact(str(v)) for k, v in self.tags(**tags).items()},
            )
        try:
            if params:
                config = dict(self.settings.config)
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
            items = [(k, redact(str(v))[:6000]) for k, v in params.items()]
            for start in range(0, len(items), 100):  # MLflow takes at most 100 params a call
                self.mlflow.log_params(dict(items[start : start + 100]))

    def set_tags(self, **tags: object) -> None:
        if self.enabled:
            self.mlflow.set_tags({k: redact(str(v)) for k, v in tags.items()})

    def describe(self, text: str) -> None:
        """The active run's description (the UI shows it on the run's page)."""
        self.set_tags(**{"mlflow.note.content": text})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.enabled:
            self.mlflow.log_metrics({k.replace("@", "_at_"): float(v) for k, v in metrics.items()}, step=step)

    def log_provenance(self, record: dict) -> None:
        """The run's provenance record (pipeline/provenance.py) as an artifact, provenance.json."""
        if self.enabled:
            self.mlflow.log_dict(record, "provenance.json")

    def log_artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        if self.enabled:
            for path in paths:
                self.mlflow.log_artifact(str(path), artifact_path=folder)
