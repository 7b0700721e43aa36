"""Where a study's trials live: SQLite by default, any RDB URL, or an Optuna journal file."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from pipeline.errors import PodiumError
from pipeline.secrets import redact

JOURNAL = "journal:///"


def storage_url(cfg: DictConfig) -> str:
    """`tune.storage` with a relative SQLite or journal path anchored at the project root."""
    url = cfg.tune.storage
    for prefix in ("sqlite:///", JOURNAL):
        if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
            return prefix + str(Path(cfg.paths.root) / url[len(prefix) :])
    return url


def open_storage(cfg: DictConfig):
    """An Optuna storage for `tune.storage`.

    RDB storages get heartbeats: a trial whose worker was killed stops beating, is marked failed
    after `tune.grace_period` seconds, and is retried once with the same parameters (reclaim.py:
    on the worker's own host, a rerun does not wait that long).
    """
    import optuna

    from pipeline.tuning.reclaim import retry_lost

    url = storage_url(cfg)
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len(JOURNAL) :])  # like SQLite: journal:///relative.log, journal:////absolute.log
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise PodiumError(
            f"tune.storage={url!r} is not a storage URL. Use sqlite:///optuna.db, an RDB URL such as "
            f"postgresql://user:password@host/db, or journal:///path/to/study.log."
        )
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=cfg.tune.heartbeat_interval,
            grace_period=cfg.tune.grace_period,
            heartbeat_stale_trial_callback=retry_lost,
            engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
        )
    except Exception as exc:  # a driver that is not installed, a server that does not answer, a bad URL
        raise PodiumError(
            f"Cannot open the study storage {redact(url)} (tune.storage): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Check the URL, the server and its "
            f"driver package (psycopg2 for PostgreSQL, pymysql for MySQL)."
        ) from None


def has_heartbeat(storage) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)
