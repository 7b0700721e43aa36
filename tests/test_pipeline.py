"""End to end: the real `dvc repro` in a fresh git repository, on the smoke preset.

One scenario in steps, since each step builds on the previous one's outputs: a fresh clone runs
the whole pipeline; a second repro runs nothing; a model config change reruns exactly that
model's training, the ensemble and the submission; `dvc exp run -S` runs an experiment whose
metrics `dvc exp show` lists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.config import compose
from pipeline.submit import score_file, submission_path
from pipeline.tracking import tracking_uri

REPO = Path(__file__).resolve().parents[1]
STAGES = {"animals_data", "animals_prepare", "animals_train@cnn", "animals_train@efficientnet",
          "animals_ensemble", "animals_submit"}
pytestmark = pytest.mark.e2e


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def dvc(cwd: Path, *args: str) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def assert_reran_only_cnn_chain(output: str) -> None:
    """cnn's training and the ensemble rerun; the submission too unless the blend came out the same
    (on smoke data greedy selection may give cnn no weight); nothing else reruns."""
    ran = ran_stages(output)
    assert {"animals_train@cnn", "animals_ensemble"} <= ran <= {"animals_train@cnn", "animals_ensemble", "animals_submit"}, output
    assert "animals_submit" in ran or "Stage 'animals_submit' didn't change" in output


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git + DVC repository holding the project's pipeline files, set to the smoke preset."""
    root = tmp_path_factory.mktemp("clone")
    for name in ("conf", "competitions", "pipeline"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("trainer: cpu", "trainer: smoke"))
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "ci@podium.test"], root)
    run(["git", "config", "user.name", "CI"], root)
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "clone"], root)
    return root


def test_fresh_clone_runs_the_whole_pipeline(repo):
    output = dvc(repo, "repro")
    assert ran_stages(output) == STAGES
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == STAGES
    for folder in ("prepared", "models/cnn", "models/efficientnet", "ensemble", "submission"):
        saved = yaml.safe_load((repo / "outputs/animals" / folder / "config.yaml").read_text())
        assert saved["competition"]["cv"]["n_splits"] == 2 and "root" not in saved["paths"]  # the resolved smoke config

    cfg = compose(["trainer=smoke"], root=repo)
    assert score_file(cfg, submission_path(cfg)) >= 0.0  # valid against the sample submission and scored
    leaderboard = json.loads((repo / "outputs/animals/submission/metrics.json").read_text())
    assert leaderboard["local_leaderboard"] is not None and leaderboard["rows"] == 1944
    ensemble = json.loads((repo / "outputs/animals/ensemble/metrics.json").read_text())
    assert ensemble["cv"] >= max(ensemble["members"].values()) - 1e-12

    client = mlflow.MlflowClient(tracking_uri(cfg))
    runs = client.search_runs([client.get_experiment_by_name("animals").experiment_id])
    by_stage: dict[str, list] = {}
    for r in runs:
        by_stage.setdefault(r.data.tags.get("stage"), []).append(r)
    assert sorted(r.data.tags["model"] for r in by_stage["train"]) == ["cnn", "efficientnet"]
    assert len(by_stage["train_fold"]) == 4  # 2 models x 2 folds, each nested under its model's run
    parents = {r.info.run_id for r in by_stage["train"]}
    assert {r.data.tags["mlflow.parentRunId"] for r in by_stage["train_fold"]} == parents
    assert len(by_stage["ensemble"]) == 1 and len(by_stage["submit"]) == 1
    assert "leaderboard_accuracy" in by_stage["submit"][0].data.metrics


def test_second_repro_runs_nothing(repo):
    output = dvc(repo, "repro")
    assert ran_stages(output) == set(), output


def test_model_config_change_reruns_that_model_ensemble_and_submission(repo):
    path = repo / "conf/model/cnn.yaml"
    path.write_text(path.read_text().replace("dropout: 0.2", "dropout: 0.3"))
    assert_reran_only_cnn_chain(dvc(repo, "repro"))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "cnn dropout 0.3"], repo)


def test_exp_run_set_param_and_metrics_show(repo):
    assert_reran_only_cnn_chain(dvc(repo, "exp", "run", "-S", "conf/model/cnn.yaml:hidden=64"))
    shown = json.loads(dvc(repo, "exp", "show", "--json"))
    text = json.dumps(shown)
    assert "outputs/animals/models/cnn/metrics.json" in text and "local_leaderboard" in text
    metrics = dvc(repo, "metrics", "show")
    assert "outputs/animals/ensemble/metrics.json" in metrics and "local_leaderboard" in metrics


def test_fold_seed_change_reruns_everything_downstream(repo):
    path = repo / "conf/competition/animals.yaml"
    path.write_text(path.read_text().replace("seed: 42", "seed: 7"))
    output = dvc(repo, "repro")
    assert ran_stages(output) == STAGES - {"animals_data"}, output
