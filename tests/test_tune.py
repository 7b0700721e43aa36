"""`podium tune`: real Optuna sweeps of real Lightning training on the smoke preset.

Trials are deterministic (CPU, seeded), so an enqueued trial with a learning rate of 1e-9 (the
initial network, chance accuracy) is certain to fall below a trained one and be pruned.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from conftest import LOOPBACK, free_port, listening_addresses, wait_for_http
from omegaconf import OmegaConf
from optuna.trial import TrialState

from pipeline.config import compose
from pipeline.errors import PodiumError
from pipeline.tracking import tracking_uri
from pipeline.training.train import train
from pipeline.tuning import tune
from pipeline.tuning.storage import open_storage, storage_url

# 300 training rows, fold 0 only, 3 epochs a trial: seconds per trial
SMOKE = ["trainer=smoke", "trainer.max_epochs=3", "tune.folds=1", "tracking.uri=sqlite:///mlflow.db"]
SPACE = """
search_space:
  model:
    optimizer:
      lr: {type: float, low: 1.0e-9, high: 1.0e+3, log: true}
      _target_: {type: categorical, choices: [torch.optim.AdamW, torch.optim.SGD]}
    hidden: {type: categorical, choices: [64, 128]}
"""
ADAM, SGD = "model.optimizer._target_: torch.optim.AdamW", "model.optimizer._target_: torch.optim.SGD"
GOOD = f"{{model.optimizer.lr: 0.002, {ADAM}, model.hidden: 128}}"
HOPELESS = f"{{model.optimizer.lr: 1.0e-9, {ADAM}, model.hidden: 128}}"  # never leaves the initial weights
DIVERGING = f"{{model.optimizer.lr: 1000.0, {SGD}, model.hidden: 64}}"  # the loss goes NaN in the first epoch


@pytest.fixture
def tune_project(project) -> Path:
    (project / "conf/tune/cnn.yaml").write_text(SPACE)
    return project


def trials(project: Path, *overrides: str) -> list[optuna.trial.FrozenTrial]:
    cfg = compose([*SMOKE, *overrides], root=project)
    study = optuna.load_study(study_name=f"animals-cnn-{cfg.tune.name}", storage=open_storage(cfg))
    return sorted(study.get_trials(), key=lambda t: t.number)


def test_sweep_prunes_fails_and_hands_the_best_parameters_to_training(tune_project):
    result = tune(
        [
            *SMOKE,
            "tune.n_trials=3",
            "tune.pruner.n_startup_trials=1",
            "tune.pruner.warmup=0.34",
            f"tune.enqueue=[{GOOD},{DIVERGING},{HOPELESS}]",
        ],
        root=tune_project,
    )

    good, diverged, hopeless = trials(tune_project)
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 3  # one report per epoch
    assert diverged.state == TrialState.FAIL and "diverged" in diverged.user_attrs["fail_reason"]
    assert hopeless.state == TrialState.PRUNED and max(hopeless.intermediate_values) == 1  # after its warm-up epoch
    assert result.counts == {"complete": 1, "pruned": 1, "fail": 1, "running": 0, "waiting": 0}
    assert result.best_trial == 0 and result.best_value == pytest.approx(good.value)

    tuned = yaml.safe_load((tune_project / "competitions/animals/tuned/cnn.yaml").read_text())
    assert (
        tuned["overrides"]
        == {"model.optimizer.lr": 0.002, "model.optimizer._target_": "torch.optim.AdamW", "model.hidden": 128}
        and tuned["trial"] == 0
    )
    cfg = compose(["trainer=smoke", "tracking.uri=sqlite:///mlflow.db"], root=tune_project)
    assert (cfg.model.optimizer.lr, cfg.model.hidden, cfg.train.tuned_from) == (
        0.002,
        128,
        "competitions/animals/tuned/cnn.yaml",
    )
    assert cfg.model.scheduler.max_lr == 0.002  # interpolations follow the tuned value
    assert (
        compose(["trainer=smoke", "model.optimizer.lr=0.01"], root=tune_project).model.optimizer.lr == 0.01
    )  # the command line wins
    assert (
        compose(["trainer=smoke", "train.tuned=false"], root=tune_project).model.optimizer.lr == 3e-3
    )  # cnn.yaml's own
    trained = train(cfg)
    saved = yaml.safe_load((trained.out_dir / "config.yaml").read_text())
    assert saved["model"]["optimizer"]["lr"] == 0.002 and saved["train"]["tuned_from"].endswith("cnn.yaml")

    client = mlflow.MlflowClient(tracking_uri(cfg))
    runs = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage LIKE 'tune%'")
    parent = next(r for r in runs if r.data.tags["stage"] == "tune")
    by_trial = {r.data.tags["trial"]: r for r in runs if r.data.tags["stage"] == "tune_trial"}
    assert {r.data.tags["mlflow.parentRunId"] for r in by_trial.values()} == {parent.info.run_id}
    assert [(by_trial[n].info.status, by_trial[n].data.tags["state"]) for n in "012"] == [
        ("FINISHED", "COMPLETE"),
        ("FAILED", "FAIL"),
        ("KILLED", "PRUNED"),
    ]
    assert (
        by_trial["0"].data.params["model.optimizer.lr"] == "0.002" and by_trial["0"].data.metrics["value"] == good.value
    )
    assert parent.data.metrics["best_value"] == good.value and parent.data.tags["best.model.optimizer.lr"] == "0.002"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)} | {
        a.path for a in client.list_artifacts(parent.info.run_id, "plots")
    }
    assert {"trials.csv", "best_params.yaml", "plots/optimization_history.png"} <= artifacts


def test_two_workers_share_one_sqlite_study_without_losing_or_repeating_trials(tune_project):
    result = tune(
        [
            *SMOKE,
            "trainer.max_epochs=1",
            "tune.n_trials=4",
            "tune.pruner.name=none",
            "tune.search_space.model.optimizer.lr.high=0.01",
        ],
        root=tune_project,
        workers=2,
    )
    done = trials(tune_project)
    assert [t.number for t in done] == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in done)
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4  # workers sample with different seeds
    assert result.counts["complete"] == 4
    client = mlflow.MlflowClient(tracking_uri(compose(SMOKE, root=tune_project)))
    runs = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage = 'tune_trial'")
    assert sorted(r.data.tags["trial"] for r in runs) == ["0", "1", "2", "3"]


def test_hyperband_and_no_pruner_both_finish_their_trials(tune_project):
    overrides = [*SMOKE, "tracking=none", "tune.n_trials=3", f"tune.enqueue=[{GOOD},{HOPELESS}]"]
    tune([*overrides, "tune.name=hyperband", "tune.pruner.name=hyperband"], root=tune_project)
    states = [t.state for t in trials(tune_project, "tune.name=hyperband")]
    assert (
        len(states) == 3
        and states[0] == TrialState.COMPLETE
        and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    )
    tune([*overrides, "tune.name=unpruned", "tune.pruner.name=none"], root=tune_project)
    unpruned = trials(tune_project, "tune.name=unpruned")
    assert [(t.state, len(t.intermediate_values)) for t in unpruned] == [(TrialState.COMPLETE, 3)] * 3


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # trials() on a heartbeat storage
@pytest.mark.parametrize("storage", ["sqlite:///optuna.db", "journal:///optuna.log"])
def test_a_killed_sweep_rerun_at_once_reclaims_the_lost_trial_and_completes_the_study(tune_project, storage):
    """SIGKILL in the middle of the second trial, rerun at once (well inside the 60 s grace period, and a
    journal has no heartbeats at all): the trial's recorded pid is gone, so the rerun fails it as lost,
    retries it with the same parameters and writes the tuned file from the two finished trials."""
    overrides = [
        *SMOKE,
        "trainer.max_epochs=4",
        "tune.n_trials=2",
        "tune.pruner.name=none",
        f"tune.storage={storage}",
        "tune.heartbeat_interval=1",
        "tune.grace_period=60",
        f"tune.enqueue=[{GOOD},{{model.optimizer.lr: 0.003, {ADAM}, model.hidden: 64}}]",
    ]
    env = {**os.environ, "PODIUM_ROOT": str(tune_project)}
    command = [sys.executable, "-m", "pipeline", "tune", *overrides]
    sweep = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:  # the event: the second trial has reported its first epoch (three are left: seconds of training)
        deadline = time.monotonic() + 240
        while not _second_trial_is_training(tune_project, storage):
            assert sweep.poll() is None, sweep.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep never reached its second trial"
            time.sleep(0.2)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    before = trials(tune_project, f"tune.storage={storage}")
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert (before[1].user_attrs["host"], before[1].user_attrs["pid"]) == (socket.gethostname(), sweep.pid)

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    lost_reason = f"lost: its worker (pid {sweep.pid} on host {socket.gethostname()}) stopped before the trial ended"
    assert f"trial 1 {lost_reason}; retried with the same parameters" in rerun.stderr
    after = trials(tune_project, f"tune.storage={storage}")
    assert (after[0].number, after[0].value, after[0].datetime_complete) == (
        0,
        before[0].value,
        before[0].datetime_complete,
    )
    assert after[1].state == TrialState.FAIL and after[1].user_attrs["fail_reason"] == lost_reason
    assert [t.number for t in after] == [0, 1, 2]
    retry = after[2]
    assert (
        retry.system_attrs["failed_trial"] == 1
        and retry.state == TrialState.COMPLETE
        and retry.params == after[1].params
    )
    assert "fail_reason" not in retry.user_attrs and retry.user_attrs["pid"] not in (sweep.pid, None)
    best = max(after[0], retry, key=lambda t: t.value)
    tuned = yaml.safe_load((tune_project / "competitions/animals/tuned/cnn.yaml").read_text())
    assert (tuned["trial"], tuned["value"]) == (best.number, round(best.value, 6))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning")
def test_no_tuned_file_comes_from_a_study_short_of_its_trials(tune_project, monkeypatch):
    """Should the workers ever return early, the study is not summarised into a tuned file."""
    from pipeline.tuning import stage
    from pipeline.tuning.reclaim import record_worker

    def worker_that_gives_up(root, plan, *_):  # starts a trial and leaves it running
        record_worker(optuna.load_study(study_name=plan.study_name, storage=trials.storage).ask())

    overrides = [*SMOKE, "tracking=none", "tune.n_trials=2"]
    trials.storage = open_storage(compose(overrides, root=tune_project))
    monkeypatch.setattr(stage, "run_worker", worker_that_gives_up)
    with pytest.raises(PodiumError) as caught:
        tune(overrides, root=tune_project)
    assert (
        f"holds 0 of tune.n_trials=2 finished trials, so no tuned file was written. Still running: trial 0 "
        f"(pid {os.getpid()} on host {socket.gethostname()}). Run the same command again"
    ) in str(caught.value)
    assert not (tune_project / "competitions/animals/tuned/cnn.yaml").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("storage", ["sqlite:///optuna.db", "journal:///optuna.log"])
def test_a_trial_given_out_but_never_started_is_reclaimed_after_the_grace_period(tune_project, storage):
    """A worker killed between Optuna's ask and the trial's first line left a RUNNING trial with no
    worker recorded and no heartbeat (which Optuna's stale check skips): the rerun fails it as lost
    and retries it, instead of waiting for it for ever (SQLite) or leaving it RUNNING (journal)."""
    journal = f"tune.storage={storage}"
    overrides = [*SMOKE, "tracking=none", "tune.n_trials=1", journal, "tune.grace_period=1"]
    study = optuna.create_study(
        study_name="animals-cnn-default",
        storage=open_storage(compose(overrides, root=tune_project)),
        direction="maximize",
    )
    good = {"model.optimizer.lr": 0.002, "model.optimizer._target_": "torch.optim.AdamW", "model.hidden": 128}
    study.enqueue_trial(good)
    study.ask()  # given out; its worker died before it began
    time.sleep(1.1)  # not a race: the trial's start time is fixed, and it is now more than the grace period ago
    result = tune(overrides, root=tune_project)
    lost, retry = trials(tune_project, journal)
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == (
        "lost: its worker (unrecorded) never started the trial, tune.grace_period=1 s after Optuna gave it out"
    )
    assert retry.system_attrs["failed_trial"] == 0 and retry.state == TrialState.COMPLETE and retry.params == good
    assert result.best_trial == 1


def test_a_trial_failing_outside_its_training_is_recorded_and_counted(tune_project, monkeypatch):
    """A tracking server that fails as the trial's value is logged: the trial fails with that reason
    and counts toward tune.n_trials, so the sweep ends instead of starting trial after trial."""
    from pipeline.tracking import Tracker

    logged = Tracker.log_metrics

    def server_down(self, metrics, step=None):
        if "value" in metrics:
            raise ConnectionError("tracking server went away")
        return logged(self, metrics, step)

    monkeypatch.setattr(Tracker, "log_metrics", server_down)
    overrides = [*SMOKE, "tune.n_trials=1", "tune.pruner.name=none"]
    with pytest.raises(PodiumError):  # no trial completed: nothing to hand over
        tune(overrides, root=tune_project)
    [failed] = trials(tune_project)
    assert (
        failed.state == TrialState.FAIL
        and failed.user_attrs["fail_reason"] == "ConnectionError: tracking server went away"
    )


def _second_trial_is_training(project: Path, storage: str) -> bool:
    try:
        done = trials(project, f"tune.storage={storage}")
    except Exception:  # no study yet (KeyError), or the sweep is still creating the storage
        return False
    return len(done) > 1 and done[1].state == TrialState.RUNNING and bool(done[1].intermediate_values)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage", "ignore::optuna.exceptions.ExperimentalWarning")
def test_a_rerun_waits_for_another_hosts_running_trial_and_retries_it_once_its_heartbeat_stops(tune_project, caplog):
    """A trial of another machine still beating is not lost: the rerun waits for it, saying so, instead
    of counting it as finished. When its heartbeats stop, the trial is failed as lost and retried."""
    overrides = [*SMOKE, "tracking=none", "tune.n_trials=1", "tune.heartbeat_interval=1", "tune.grace_period=2"]
    storage = open_storage(compose(overrides, root=tune_project))
    study = optuna.create_study(study_name="animals-cnn-default", storage=storage, direction="maximize")
    good = {"model.optimizer.lr": 0.002, "model.optimizer._target_": "torch.optim.AdamW", "model.hidden": 128}
    study.enqueue_trial(good)
    remote = study.ask()  # run by a worker on another machine
    remote.set_user_attr("host", "elsewhere")
    remote.set_user_attr("pid", 4242)
    waited = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("waiting for trial 0 (pid 4242 on host elsewhere) to finish"):
                waited.set()

    def worker_elsewhere():  # beats until the rerun says it waits for its trial, then dies
        deadline = time.monotonic() + 120
        while not waited.wait(0.5) and time.monotonic() < deadline:
            storage.record_heartbeat(remote._trial_id)

    storage.record_heartbeat(remote._trial_id)
    beating = threading.Thread(target=worker_elsewhere, daemon=True)
    beating.start()
    caplog.set_level(logging.INFO, logger="pipeline")
    logging.getLogger("pipeline").addHandler(handler := Waiting())
    try:
        result = tune(overrides, root=tune_project)
    finally:
        logging.getLogger("pipeline").removeHandler(handler)
        waited.set()
        beating.join()
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting for")] == [
        "waiting for trial 0 (pid 4242 on host elsewhere) to finish: with it the study holds tune.n_trials=1 (a trial "
        "silent for tune.grace_period=2 s is failed here and retried)"
    ]
    lost, retry = trials(tune_project)
    assert lost.state == TrialState.FAIL
    assert (
        lost.user_attrs["fail_reason"]
        == "lost: its worker (pid 4242 on host elsewhere) sent no heartbeat for tune.grace_period=2 s"
    )
    assert retry.system_attrs["failed_trial"] == 0 and retry.state == TrialState.COMPLETE and retry.params == good
    assert retry.user_attrs["host"] == socket.gethostname() and "fail_reason" not in retry.user_attrs
    assert result.best_trial == 1 and result.counts["complete"] == 1


def _states(project: Path) -> list[TrialState]:
    try:
        return [t.state for t in trials(project)]
    except Exception:  # no study yet (KeyError), or the sweep is still creating the database
        return []


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "+tune.search_space.model.widht={type: int, low: 8, high: 64}",
            "`model.widht` is not a key of the composed config",
        ),
        ("tune.search_space.model.hidden.choices=[]", "`choices` must be a non-empty list"),
        ("tune.search_space.model.optimizer.lr.low=1.0e+4", "low 10000.0 is above high 1000.0"),
        ("+tune.search_space.model.depth={type: float, low: 2, high: 3}", "model.depth"),  # an int key given floats
        ("+tune.search_space.augment={type: categorical, choices: [none, flip]}", "augment/flip"),  # no such option
        ("model.hidden=64", "is both searched"),
        ("tune.enqueue=[{model.dropout: 0.1}]", "tune.enqueue names model.dropout"),
        ("tune.pruner.name=asha", "tune.pruner.name is 'asha'; valid values are median, hyperband, none"),
        ("tune.folds=9", "tune.folds=9: choose 1 to 2 folds"),
    ],
)
def test_an_invalid_sweep_fails_before_any_trial(tune_project, override, message):
    with pytest.raises(PodiumError) as caught:
        tune([*SMOKE, "tune.n_trials=1", "tracking=none", override], root=tune_project)
    assert message in str(caught.value)
    assert not _states(tune_project)  # no trial ran


def test_resuming_with_another_objective_is_refused(tune_project):
    tune([*SMOKE, "tune.n_trials=1", "tracking=none"], root=tune_project)
    with pytest.raises(PodiumError, match=r"another objective.*tune.name"):
        tune([*SMOKE, "tune.n_trials=2", "tracking=none", "trainer.max_epochs=2"], root=tune_project)
    tune([*SMOKE, "tune.n_trials=2", "tracking=none", "tune.timeout=600"], root=tune_project)  # bookkeeping may change
    assert len(trials(tune_project)) == 2


def test_dashboard_serves_the_projects_studies_on_loopback(project):
    """`podium dashboard`: optuna-dashboard over tune.storage, on 127.0.0.1 only, stopped afterwards."""
    import json

    cfg = compose(["tracking=none"], root=project)
    study = optuna.create_study(study_name="animals-cnn-default", storage=storage_url(cfg), direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "dashboard", "--port", str(port)],
        env={**os.environ, "PODIUM_ROOT": str(project)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        answer = json.loads(wait_for_http(f"http://127.0.0.1:{port}/api/studies", server))
        assert [s["study_name"] for s in answer["study_summaries"]] == ["animals-cnn-default"]
        assert listening_addresses(port) and listening_addresses(port) <= LOOPBACK
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_storage_passwords_never_reach_messages_saved_configs_or_params(tune_project):
    secret = "postgresql://podium:s3cret-pw@db.example.org/optuna"
    cfg = compose([*SMOKE, f"tune.storage={secret}"], root=tune_project)
    from pipeline.io import portable_config
    from pipeline.tracking import flatten

    saved = OmegaConf.to_yaml(portable_config(cfg))
    assert "s3cret-pw" not in saved and "postgresql://podium:***@db.example.org/optuna" in saved
    assert not [v for v in flatten(OmegaConf.to_container(portable_config(cfg))).values() if "s3cret" in v]
    with pytest.raises(PodiumError) as caught:  # no PostgreSQL driver or server here: refused, URL masked
        tune([*SMOKE, "tune.n_trials=1", f"tune.storage={secret}"], root=tune_project)
    assert "Cannot open the study storage postgresql://podium:***@db.example.org/optuna" in str(caught.value)
    assert "s3cret" not in str(caught.value)
