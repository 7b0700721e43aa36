"""Interrupted training resumes: a SIGKILL or Ctrl-C mid-fold loses only the epoch in flight, and the
final predictions are byte-identical to an uninterrupted run's (deterministic CPU training)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import config_maker, project_with
from mlflow.tracking import MlflowClient

from pipeline.prepare import load_prepared
from pipeline.training.spec import FoldSpec
from pipeline.training.train import train

pytestmark = pytest.mark.slow  # training killed and rerun

# The command the DVC train stage runs, shrunk: 2 folds of 600 rows, 6 epochs each.
OVERRIDES = [
    "trainer=smoke",
    "trainer.max_epochs=6",
    "train.seeds=[0]",
    "data.limit_train_rows=1200",
    "tracking.uri=sqlite:///mlflow.db",
]
OUT = "outputs/animals/models/cnn"


def podium_train(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "train", *OVERRIDES, f"out_dir={OUT}"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epoch(process: subprocess.Popen, history: Path, epoch: int, timeout: float = 120) -> None:
    """Poll until the fold's saved history holds `epoch` (its checkpoint is written just after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if history.is_file() and any(row["epoch"] >= epoch for row in json.loads(history.read_text() or "[]")):
            return
        assert process.poll() is None, f"the run ended before epoch {epoch}: {process.communicate()}"
        time.sleep(0.01)
    raise AssertionError(f"no epoch {epoch} in {history} after {timeout} s")


def kill_during_fold_1(project: Path, cfg):
    """Start the train command, SIGKILL it once fold 1 has recorded epoch 1; the two folds' states."""
    first, second = FoldSpec.of(cfg).fold_state(0), FoldSpec.of(cfg).fold_state(1)
    run = podium_train(project)
    wait_for_epoch(run, second.folder / "history.json", epoch=1)
    run.send_signal(signal.SIGKILL)
    run.wait()
    return first, second


@pytest.fixture(scope="module")
def reference(tmp_path_factory, animals_data):
    """An uninterrupted run of the same config, in this process and its own project: its files' bytes."""
    root = project_with(tmp_path_factory.mktemp("reference"), animals_data)
    train(config_maker(root)(*OVERRIDES[:-1], "out_dir=runs/reference"))
    return {
        name: (root / "runs/reference" / name).read_bytes() for name in ("oof.parquet", "test.parquet", "history.csv")
    }


def test_sigkill_mid_fold_then_rerun_resumes_and_matches_an_uninterrupted_run(project, make_cfg, reference):
    cfg = make_cfg(*OVERRIDES[:-1], f"out_dir={OUT}")
    first, second = kill_during_fold_1(project, cfg)
    assert (first.folder / "result.npz").is_file(), "fold 0 finished and recorded"
    assert second.last.is_file() and not (second.folder / "result.npz").exists(), (
        "fold 1 interrupted after a checkpoint"
    )
    assert not (project / OUT / "oof.parquet").exists()
    killed_at = second.resumable_epoch()
    assert 1 <= killed_at < 6

    rerun = podium_train(project)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "cnn fold 0: finished by an earlier run, kept" in err
    assert f"cnn fold 1: resuming at epoch {killed_at} from " in err
    for name, content in reference.items():
        assert (project / OUT / name).read_bytes() == content, f"{name} differs from the uninterrupted run's"
    # a complete run leaves only the best checkpoints, and no temporary file anywhere
    assert sorted(p.name for p in (first.folder.parent).rglob("*") if p.is_file()) == [
        "best.ckpt",
        "best.ckpt",
        "data.txt",
        "data.txt",
    ]
    assert not [p for p in project.rglob("*.tmp")]


def test_data_changed_between_kill_and_rerun_trains_afresh_and_says_why(project, make_cfg):
    """Fold 0 finished, fold 1 interrupted; then 20 training labels are fixed. The rerun must not keep
    fold 0's predictions (made on the old labels and folds) nor resume fold 1: both train afresh."""
    import pandas as pd

    cfg = make_cfg(*OVERRIDES[:-1], f"out_dir={OUT}")
    first, second = kill_during_fold_1(project, cfg)
    assert (first.folder / "result.npz").is_file() and second.last.is_file()

    path = project / "data/animals/raw/train.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    cats = table.index[table["label"] == "cat"][:20]
    table.loc[cats, "label"] = "dog"
    table.to_csv(path, index=False)

    rerun = podium_train(project)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "finished by an earlier run, kept" not in err and "resuming at epoch" not in err, err
    for fold in (0, 1):
        assert f"cnn fold {fold}: the saved state in " in err and "was computed from other data" in err, err
    oof = pd.read_parquet(project / OUT / "oof.parquet")
    relabelled = oof[oof["id"].isin(table.loc[cats, "id"])]
    assert len(relabelled) and (relabelled["target"] == cfg.competition.classes.index("dog")).all()


def test_ctrl_c_stops_with_one_line_then_the_same_command_resumes(project, make_cfg, reference):
    cfg = make_cfg(*OVERRIDES[:-1], f"out_dir={OUT}")
    run = podium_train(project)
    wait_for_epoch(run, FoldSpec.of(cfg).fold_state(0).folder / "history.json", epoch=2)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("podium train: interrupted.") and "to resume" in err
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("animals").experiment_id
    statuses = lambda stage: sorted(r.info.status for r in client.search_runs([experiment], f"tags.stage = '{stage}'"))  # noqa: E731
    assert statuses("train") == ["KILLED"]
    assert statuses("train_fold")[-1] == "KILLED"

    rerun = podium_train(project)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "cnn fold 0: resuming at epoch" in err, err
    assert (project / OUT / "oof.parquet").read_bytes() == reference["oof.parquet"]


def test_a_checkpoint_that_is_not_plain_tensors_is_refused_not_run(project, make_cfg):
    """Checkpoints are read with weights_only=True: a planted pickle cannot run code on resume."""
    cfg = make_cfg(*OVERRIDES[:-1], "out_dir=runs/x")
    state = FoldSpec.of(cfg).fold_state(0)
    state.folder.mkdir(parents=True)
    # Recorded as computed on this very data, so the checkpoint is not set aside as stale but read.
    identity = load_prepared(cfg, scratch=project / "runs/x/prepared").identity
    (state.folder / "data.txt").write_text(identity + "\n")
    marker = project / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import torch

    torch.save({"epoch": 1, "payload": Payload()}, state.last)
    from pipeline.errors import PodiumError

    with pytest.raises(PodiumError, match=r"last\.ckpt cannot be read as plain tensors.*train\.resume=false"):
        train(cfg)
    assert not marker.exists()
