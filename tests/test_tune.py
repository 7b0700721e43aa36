"""`podium tune`: real Optuna sweeps of real Lightning training on the smoke preset.

Trials are deterministic (CPU, seeded), so an enqueued trial with a learning rate of 1e-9 (the
initial network, chance accuracy) is certain to fall below a trained one and be pruned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from optuna.trial import TrialState

from conftest import LOOPBACK, free_port, listening_addresses, wait_for_http
from pipeline.config import compose
from pipeline.errors import PodiumError
from pipeline.tracking import tracking_uri
from pipeline.training.train import train
from pipeline.tuning import tune
from pipeline.tuning.storage import storage_url

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
    study = optuna.load_study(study_name=f"animals-cnn-{cfg.tune.name}", storage=storage_url(cfg))
    return sorted(study.get_trials(), key=lambda t: t.number)


def test_sweep_prunes_fails_and_hands_the_best_parameters_to_training(tune_project):
    result = tune([*SMOKE, "tune.n_trials=3", "tune.pruner.n_startup_trials=1", "tune.pruner.warmup=0.34",
                   f"tune.enqueue=[{GOOD},{DIVERGING},{HOPELESS}]"], root=tune_project)

    good, diverged, hopeless = trials(tune_project)
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 3  # one report per epoch
    assert diverged.state == TrialState.FAIL and "diverged" in diverged.user_attrs["fail_reason"]
    assert hopeless.state == TrialState.PRUNED and max(hopeless.intermediate_values) == 1  # after its warm-up epoch
    assert result.counts == {"complete": 1, "pruned": 1, "fail": 1, "running": 0, "waiting": 0}
    assert result.best_trial == 0 and result.best_value == pytest.approx(good.value)

    tuned = yaml.safe_load((tune_project / "competitions/animals/tuned/cnn.yaml").read_text())
    assert tuned["overrides"] == {"model.optimizer.lr": 0.002, "model.optimizer._target_": "torch.optim.AdamW",
                                  "model.hidden": 128} and tuned["trial"] == 0
    cfg = compose(["trainer=smoke", "tracking.uri=sqlite:///mlflow.db"], root=tune_project)
    assert (cfg.model.optimizer.lr, cfg.model.hidden, cfg.train.tuned_from) == (0.002, 128, "competitions/animals/tuned/cnn.yaml")
    assert cfg.model.scheduler.max_lr == 0.002  # interpolations follow the tuned value
    assert compose(["trainer=smoke", "model.optimizer.lr=0.01"], root=tune_project).model.optimizer.lr == 0.01  # the command line wins
    assert compose(["trainer=smoke", "train.tuned=false"], root=tune_project).model.optimizer.lr == 3e-3  # cnn.yaml's own
    trained = train(cfg)
    saved = yaml.safe_load((trained.out_dir / "config.yaml").read_text())
    assert saved["model"]["optimizer"]["lr"] == 0.002 and saved["train"]["tuned_from"].endswith("cnn.yaml")

    client = mlflow.MlflowClient(tracking_uri(cfg))
    runs = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage LIKE 'tune%'")
    parent = next(r for r in runs if r.data.tags["stage"] == "tune")
    by_trial = {r.data.tags["trial"]: r for r in runs if r.data.tags["stage"] == "tune_trial"}
    assert {r.data.tags["mlflow.parentRunId"] for r in by_trial.values()} == {parent.info.run_id}
    assert [(by_trial[n].info.status, by_trial[n].data.tags["state"]) for n in "012"] == \
        [("FINISHED", "COMPLETE"), ("FAILED", "FAIL"), ("KILLED", "PRUNED")]
    assert by_trial["0"].data.params["model.optimizer.lr"] == "0.002" and by_trial["0"].data.metrics["value"] == good.value
    assert parent.data.metrics["best_value"] == good.value and parent.data.tags["best.model.optimizer.lr"] == "0.002"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)} | {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"trials.csv", "best_params.yaml", "plots/optimization_history.png"} <= artifacts


def test_two_workers_share_one_sqlite_study_without_losing_or_repeating_trials(tune_project):
    result = tune([*SMOKE, "trainer.max_epochs=1", "tune.n_trials=4", "tune.pruner.name=none",
                   "tune.search_space.model.optimizer.lr.high=0.01"], root=tune_project, workers=2)
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
    assert len(states) == 3 and states[0] == TrialState.COMPLETE and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    tune([*overrides, "tune.name=unpruned", "tune.pruner.name=none"], root=tune_project)
    unpruned = trials(tune_project, "tune.name=unpruned")
    assert [(t.state, len(t.intermediate_values)) for t in unpruned] == [(TrialState.COMPLETE, 3)] * 3


def test_a_killed_sweep_resumes_keeping_finished_trials_and_retrying_the_killed_one(tune_project):
    overrides = [*SMOKE, "trainer.max_epochs=4", "tune.n_trials=3", "tune.pruner.name=none", "tune.heartbeat_interval=1",
                 "tune.grace_period=2", f"tune.enqueue=[{GOOD},{{model.optimizer.lr: 0.003, {ADAM}, model.hidden: 64}}]"]
    env = {**os.environ, "PODIUM_ROOT": str(tune_project)}
    sweep = subprocess.Popen([sys.executable, "-m", "pipeline", "tune", *overrides], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # kill in the middle of the second trial
            states = _states(tune_project)
            if states[:1] == [TrialState.COMPLETE] and states[1:2] == [TrialState.RUNNING]:
                break
            assert sweep.poll() is None, sweep.stderr.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the sweep never reached its second trial")
        time.sleep(1.0)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    before = trials(tune_project)
    assert [t.state for t in before[:2]] == [TrialState.COMPLETE, TrialState.RUNNING]

    time.sleep(3)  # past the grace period: the killed trial's heartbeat has stopped
    tune(overrides, root=tune_project)
    after = trials(tune_project)
    assert (after[0].number, after[0].value, after[0].datetime_complete) == (0, before[0].value, before[0].datetime_complete)
    assert after[1].state == TrialState.FAIL and "fail_reason" not in after[1].user_attrs  # killed, not failed by itself
    retry = next(t for t in after if t.system_attrs.get("failed_trial") == 1)
    assert retry.state == TrialState.COMPLETE and retry.params == after[1].params
    finished = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3 and not [t for t in after if t.state == TrialState.RUNNING]


def _states(project: Path) -> list[TrialState]:
    try:
        return [t.state for t in trials(project)]
    except Exception:  # no study yet (KeyError), or the sweep is still creating the database
        return []


@pytest.mark.parametrize("override, message", [
    ("+tune.search_space.model.widht={type: int, low: 8, high: 64}", "`model.widht` is not a key of the composed config"),
    ("tune.search_space.model.hidden.choices=[]", "`choices` must be a non-empty list"),
    ("tune.search_space.model.optimizer.lr.low=1.0e+4", "low 10000.0 is above high 1000.0"),
    ("+tune.search_space.model.depth={type: float, low: 2, high: 3}", "model.depth"),  # an int key given floats
    ("+tune.search_space.augment={type: categorical, choices: [none, flip]}", "augment/flip"),  # no such option
    ("model.hidden=64", "is both searched"),
    ("tune.enqueue=[{model.dropout: 0.1}]", "tune.enqueue names model.dropout"),
    ("tune.pruner.name=asha", "tune.pruner.name is 'asha'; valid values are median, hyperband, none"),
    ("tune.folds=9", "tune.folds=9: choose 1 to 2 folds"),
])
def test_an_invalid_sweep_fails_before_any_trial(tune_project, override, message):
    with pytest.raises(PodiumError) as caught:
        tune([*SMOKE, "tune.n_trials=1", "tracking=none", override], root=tune_project)
    assert message in str(caught.value)
    assert not _states(tune_project)  # no trial ran


def test_resuming_with_another_objective_is_refused(tune_project):
    tune([*SMOKE, "tune.n_trials=1", "tracking=none"], root=tune_project)
    with pytest.raises(PodiumError, match="another objective.*tune.name"):
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
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "dashboard", "--port", str(port)],
                              env={**os.environ, "PODIUM_ROOT": str(project)}, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
