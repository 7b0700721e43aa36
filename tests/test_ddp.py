"""Training on two processes (DDP with gloo, on CPU): the single process's predictions, each row once, written once.

The DDP runs go through the real command line in a subprocess: Lightning starts the second
process by re-running that command, as it does on a GPU machine.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipeline.errors import PodiumError
from pipeline.training.data import EvalBatches, ShardedBatches, shuffled_batches
from pipeline.training.distributed import World, gather_rows

pytestmark = pytest.mark.slow  # DDP processes and torchrun

DDP = ("trainer.devices=2", "trainer.strategy=ddp")
# Each process writes into its own folder if it writes at all: only rank 0's may exist.
PER_RANK_OUT = "out_dir=outputs/ddp_rank${oc.env:LOCAL_RANK,0}"


def podium_train(root, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PODIUM_ROOT": str(root)}
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", *overrides],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    return run


def test_training_batches_split_across_processes():
    batches = shuffled_batches(103, batch_size=8, seed=3)
    single = list(ShardedBatches(batches))
    shards = [list(ShardedBatches(batches, World(rank, 2))) for rank in (0, 1)]
    assert [a + b for a, b in zip(*shards)] == single, (
        "the two halves of each global batch make the single process's batch"
    )
    assert all(len(a) == len(b) == 4 for a, b in zip(*shards))
    batches.sampler.set_epoch(1)  # Lightning sets the epoch on the sampler underneath
    assert list(ShardedBatches(batches)) != single


def test_prediction_batches_dealt_out_once():
    order = np.random.default_rng(0).permutation(23)
    shards = [EvalBatches(order, 4, World(rank, 3)) for rank in range(3)]
    assert sorted(np.concatenate([s.positions for s in shards]).tolist()) == list(range(23)), (
        "each row once, none padded"
    )
    assert [len(s) for s in shards] == [2, 2, 2]
    assert EvalBatches(order, 4).positions.tolist() == order.tolist()


def test_gather_rows_refuses_repeated_or_missing_rows():
    rows = np.arange(6.0).reshape(3, 2)
    assert gather_rows(np.array([2, 0, 1]), rows, 3, "x")[2].tolist() == [0.0, 1.0]
    with pytest.raises(PodiumError, match=r"predicted 3 rows for 4 .1 missing"):
        gather_rows(np.array([2, 0, 1]), rows, 4, "cnn fold 0 out-of-fold")
    with pytest.raises(PodiumError, match="1 repeated"):
        gather_rows(np.array([2, 0, 0]), rows, 3, "cnn fold 0 out-of-fold")


def test_lstm_under_ddp_predicts_what_one_process_does(text_project):
    """No BatchNorm and no dropout: two processes on halves of each batch train the same model."""
    exact = (
        "competition=rotten-tomatoes",
        "model=lstm",
        "trainer=smoke",
        "trainer.max_epochs=2",
        "trainer.precision=32-true",
        "model.dropout=0",
        "tracking.enabled=false",
    )
    podium_train(text_project, *exact, "out_dir=outputs/single")
    ddp = podium_train(text_project, *exact, *DDP, PER_RANK_OUT)
    assert "training on 2 processes" in ddp.stderr and ddp.stdout.count("CV (all OOF)") == 1, "rank 0 alone reports"
    assert not (text_project / "outputs" / "ddp_rank1").exists(), "the second process wrote files"
    for name in ("oof", "test"):
        single = pd.read_parquet(text_project / "outputs" / "single" / f"{name}.parquet")
        spread = pd.read_parquet(text_project / "outputs" / "ddp_rank0" / f"{name}.parquet")
        assert spread["id"].tolist() == single["id"].tolist(), f"{name}: the same ids in the same order"
        columns = [c for c in single if c.startswith("prob_")]
        assert np.abs(spread[columns].to_numpy() - single[columns].to_numpy()).max() < 1e-4


def test_cnn_under_ddp_writes_every_row_and_run_once(project):
    """BatchNorm per process (SyncBatchNorm needs GPUs) changes the weights a little: ids exact, runs once."""
    podium_train(
        project, "trainer=smoke", "train.seeds=[0]", "tracking.uri=sqlite:///mlflow.db", "out_dir=outputs/single"
    )
    ddp = podium_train(
        project, "trainer=smoke", "train.seeds=[0]", "tracking.uri=sqlite:///mlflow.db", *DDP, PER_RANK_OUT
    )
    assert [line for line in ddp.stderr.splitlines() if not line.startswith("podium: ")] == [], "no library warnings"
    assert not (project / "outputs" / "ddp_rank1").exists(), "the second process wrote files"
    single = pd.read_parquet(project / "outputs" / "single" / "oof.parquet")
    spread = pd.read_parquet(project / "outputs" / "ddp_rank0" / "oof.parquet")
    assert spread["id"].is_unique and spread["id"].tolist() == single["id"].tolist()
    assert spread["fold"].tolist() == single["fold"].tolist()
    probabilities = spread[[c for c in spread if c.startswith("prob_")]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5), "each row predicted once, not summed over processes"

    # streamed from the files, each process decoding its own shard: the same pixels, so the same predictions
    streamed = "out_dir=outputs/ddp_stream_rank${oc.env:LOCAL_RANK,0}"
    podium_train(
        project, "trainer=smoke", "train.seeds=[0]", "tracking=none", *DDP, streamed, "competition.image.store=stream"
    )
    assert not (project / "outputs" / "ddp_stream_rank1").exists(), "the second process wrote files"
    for name in ("oof.parquet", "test.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(project / "outputs" / "ddp_stream_rank0" / name),
            pd.read_parquet(project / "outputs" / "ddp_rank0" / name),
        )

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("animals").experiment_id
    parents = client.search_runs([experiment], "tags.stage = 'train'", order_by=["attributes.start_time"])
    assert len(parents) == 2, "one training run per command, not one per process"
    folds = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parents[1].info.run_id}'")
    assert sorted(r.data.tags["fold"] for r in folds) == ["0", "1"]
    for fold in folds:
        assert len(client.get_metric_history(fold.info.run_id, "val_score")) == 1, (
            "one value per epoch, not per process"
        )
    assert parents[1].data.metrics["cv_accuracy"] == pytest.approx(
        float(pd.read_json(project / "outputs" / "ddp_rank0" / "metrics.json", typ="series")["cv"])
    )


def test_sweep_under_ddp_prunes_and_fails_trials_on_every_process(project):
    """Rank 0 runs the study and announces each trial; both processes train it and stop at the same epoch."""
    from test_tune import DIVERGING, GOOD, HOPELESS, SMOKE, SPACE

    (project / "conf/tune/cnn.yaml").write_text(SPACE)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "tune",
            *SMOKE,
            *DDP,
            "tune.n_trials=3",
            "tune.pruner.n_startup_trials=1",
            "tune.pruner.warmup=0.34",
            f"tune.enqueue=[{GOOD},{DIVERGING},{HOPELESS}]",
        ],
        cwd=project,
        env={**env, "PODIUM_ROOT": str(project)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("1 complete, 1 pruned, 1 failed") == 1, "rank 0 alone reports"

    import optuna

    study = optuna.load_study(study_name="animals-cnn-default", storage=f"sqlite:///{project / 'optuna.db'}")
    good, diverged, hopeless = sorted(study.get_trials(), key=lambda t: t.number)
    assert len(study.get_trials()) == 3, "the second process asked the study for no trial of its own"
    assert good.state.name == "COMPLETE" and len(good.intermediate_values) == 3
    assert diverged.state.name == "FAIL" and "diverged" in diverged.user_attrs["fail_reason"]
    assert hopeless.state.name == "PRUNED" and max(hopeless.intermediate_values) == 1, "pruned after its warm-up epoch"

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("animals").experiment_id
    assert len(client.search_runs([experiment], "tags.stage = 'tune_trial'")) == 3, "one MLflow run per trial"


def test_torchrun_launch_writes_what_one_process_writes(project):
    """torchrun starts both processes itself (the README's multi-node path, on one machine)."""
    podium_train(project, "trainer=smoke", "train.seeds=[0]", "tracking.enabled=false", "out_dir=outputs/single")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "pipeline",
            "train",
            "trainer=smoke",
            "train.seeds=[0]",
            "tracking.enabled=false",
            *DDP,
            "out_dir=outputs/torchrun_rank${oc.env:RANK,0}",
        ],
        cwd=project,
        env={**env, "PODIUM_ROOT": str(project)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("CV (all OOF)") == 1 and not (project / "outputs" / "torchrun_rank1").exists()
    single = pd.read_parquet(project / "outputs" / "single" / "oof.parquet")
    spread = pd.read_parquet(project / "outputs" / "torchrun_rank0" / "oof.parquet")
    assert spread["id"].tolist() == single["id"].tolist() and spread["fold"].tolist() == single["fold"].tolist()
