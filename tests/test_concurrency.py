"""Processes opening one new SQLite MLflow store at the same instant all record their runs.

Each process composes its config and imports MLflow first (seconds, and never equally long), then
waits at a barrier; all are released together, so their first store access (creating the tables
and the experiment) coincides on every run of the test, not only when the timing happens to.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # processes racing on one store

WORKERS = 4


def open_store_at_the_signal(root: str, worker: int, start) -> None:
    """One worker: a training-like run with a nested fold run, opened when every worker is ready."""
    from pipeline.config import compose
    from pipeline.tracking import Tracker

    tracker = Tracker.of(compose(["tracking.uri=sqlite:///mlflow.db", "tracking.experiment=race"], root=Path(root)))
    start.wait(timeout=120)  # the start signal: every worker has imported MLflow and holds its config
    with tracker.run(f"worker {worker}", stage="train", worker=str(worker)):
        with tracker.run("fold 0", nested=True, stage="train_fold"):
            tracker.log_metrics({"worker": worker})


def test_processes_first_opening_a_new_sqlite_store_together_all_record_their_runs(project):
    assert not (project / "mlflow.db").exists()
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands would be
    start = spawn.Barrier(WORKERS)
    workers = [spawn.Process(target=open_store_at_the_signal, args=(str(project), n, start)) for n in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * WORKERS  # a worker that lost the race exits 1 with its traceback

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e for e in client.search_experiments() if e.name == "race"]
    assert len(experiments) == 1  # created once, found by the others
    runs = client.search_runs([experiments[0].experiment_id])
    parents = {r.data.tags["worker"]: r for r in runs if r.data.tags["stage"] == "train"}
    folds = [r for r in runs if r.data.tags["stage"] == "train_fold"]
    assert sorted(parents) == [str(n) for n in range(WORKERS)] and len(folds) == WORKERS
    assert {r.data.tags["mlflow.parentRunId"] for r in folds} == {r.info.run_id for r in parents.values()}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.metrics["worker"] for r in folds) == list(range(WORKERS))
