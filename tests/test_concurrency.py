"""Two trainings at once on one new SQLite MLflow store both finish, with all their runs recorded."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # processes racing on one store


def test_two_trainings_share_a_new_sqlite_store(project):
    assert not (project / "mlflow.db").exists()
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "train",
                "trainer=smoke",
                f"train.seeds=[{seed}]",
                "tracking.uri=sqlite:///mlflow.db",
                f"out_dir=runs/seed_{seed}",
            ],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("animals").experiment_id
    parents = client.search_runs([experiment], "tags.stage = 'train'")
    folds = client.search_runs([experiment], "tags.stage = 'train_fold'")
    assert sorted(r.data.tags["seed"] for r in folds) == ["0", "0", "1", "1"]
    assert [r.info.status for r in parents + folds] == ["FINISHED"] * 6
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == {r.info.run_id for r in parents}
    for parent in parents:
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
            "oof.parquet",
            "metrics.json",
            "provenance.json",
        }
