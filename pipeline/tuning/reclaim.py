"""Trials whose worker is gone (SIGKILL, a lost node): found, failed with the reason, retried once.

Every trial records its worker's host and pid when it starts. A RUNNING trial recorded on this host
by a process that is no longer alive is lost at once; on storages with heartbeats, so is any trial
silent for longer than `tune.grace_period` (its worker may be on another machine). A lost trial is
marked failed with a `fail_reason` starting "lost:", does not count toward `tune.n_trials`, and is
queued again with the same parameters by Optuna's RetryHeartbeatStaleTrialCallback.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from pathlib import Path

from pipeline import io
from pipeline.tuning.storage import has_heartbeat

log = logging.getLogger("pipeline.tuning")

LOST = "lost: "  # how a lost trial's fail_reason starts
MAX_RETRY = 1  # a lost trial is run again once; lost twice, the sampler proposes a new one instead
_OF_THE_RUN = ("fail_reason", "host", "pid", "pids")  # user attributes of one attempt, not carried to its retry


def record_worker(trial) -> None:
    """Note the process running `trial`, so that a rerun can tell when the trial's worker is gone."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("pids", pid_scope())


def pid_scope() -> str:
    """Which processes a pid names: this boot of the machine and this pid namespace.

    Containers may share a host name yet not see each other's pids (and number them alike): a pid
    is looked up only where the scope is the same. Empty where /proc does not say (macOS)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def worker_of(trial) -> str:
    """`pid 123 on host gpu-2`, or `unrecorded` for a trial stopped before it recorded its worker."""
    host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
    return f"pid {pid} on host {host}" if host is not None else "unrecorded"


def listing(trials: list) -> str:
    """`trial 3 (pid 123 on host gpu-2), trial 4 (...)`."""
    return ", ".join(f"trial {t.number} ({worker_of(t)})" for t in trials)


def is_lost(trial) -> bool:
    return trial.state.name == "FAIL" and str(trial.user_attrs.get("fail_reason", "")).startswith(LOST)


def retry_lost(study, trial) -> bool:
    """Queue a lost trial again with its parameters (Optuna's retry, less the lost attempt's own
    attributes); the heartbeat storages' stale-trial callback. False: it was retried already."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    kept = copy.deepcopy(trial)  # Optuna's callback appends to retry_history: not to a storage's cached trial
    kept.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _OF_THE_RUN}
    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, kept)
    return len(trial.system_attrs.get("retry_history", [])) < MAX_RETRY


def reclaim_lost(study, grace_period: float) -> list[int]:
    """Fail and retry the study's RUNNING trials whose worker is gone; the numbers of those failed here.

    Gone: recorded on this host (and pid scope) by a pid that is not alive, or by this very process
    (which runs one trial at a time, and none while it looks); on heartbeat storages, silent for
    `grace_period` s; on any storage, started `grace_period` s ago and its worker never recorded
    (killed between Optuna's ask and the trial's first line, before any heartbeat).
    """
    from datetime import datetime

    from optuna.trial import TrialState

    storage = study._storage
    stale = set(storage._get_stale_trial_ids(study._study_id)) if has_heartbeat(storage) else set()
    here, scope = socket.gethostname(), pid_scope()
    lost = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs, pid = trial.user_attrs, trial.user_attrs.get("pid")
        dead = (
            attrs.get("host") == here
            and attrs.get("pids") == scope
            and pid is not None
            and (pid == os.getpid() or not io.process_alive(pid))
        )
        # Optuna records datetime_start as the local time, naive
        unrecorded = (
            "host" not in attrs
            and trial.datetime_start is not None
            and (datetime.now() - trial.datetime_start).total_seconds() > grace_period
        )
        if not (dead or unrecorded) and trial._trial_id not in stale:
            continue
        why = (
            "stopped before the trial ended"
            if dead
            else f"never started the trial, tune.grace_period={grace_period} s after Optuna gave it out"
            if unrecorded
            else f"sent no heartbeat for tune.grace_period={grace_period} s"
        )
        reason = f"{LOST}its worker ({worker_of(trial)}) {why}"
        if _fail(study, trial._trial_id, reason):
            again = retry_lost(study, storage.get_trial(trial._trial_id))
            log.warning(
                "trial %d %s; %s",
                trial.number,
                reason,
                "retried with the same parameters" if again else f"not retried (lost {MAX_RETRY + 1} times)",
            )
            lost.append(trial.number)
    return lost


def _fail(study, trial_id: int, reason: str) -> bool:
    """Mark a running trial failed with `reason`, as fail_stale_trials does; False: another worker was first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        study._storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        return study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
