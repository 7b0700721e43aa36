"""The same config gives byte-identical predictions, and every run records what it needs to be repeated."""

from __future__ import annotations

import json
import subprocess

from mlflow.tracking import MlflowClient

from pipeline.provenance import dvc_hash
from pipeline.training.train import train

LSTM = ["model=lstm", "trainer=smoke", "train.seeds=[0]", "trainer.max_epochs=2"]


def git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_two_runs_of_one_config_write_identical_predictions_and_their_provenance(text_project, make_text_cfg):
    git(text_project, "init", "-q")
    git(text_project, "add", "conf")
    git(text_project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "project")

    first = train(make_text_cfg(*LSTM, "out_dir=runs/first"))
    with open(text_project / "conf" / "config.yaml", "a") as fh:  # a tracked file changes: the tree is dirty
        fh.write("\n# an edit\n")
    second = train(make_text_cfg(*LSTM, "out_dir=runs/second"))

    for name in ("oof.parquet", "test.parquet"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    records = [json.loads((r.out_dir / "provenance.json").read_text()) for r in (first, second)]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=text_project, capture_output=True, text=True
    ).stdout.strip()
    assert [r["git"] for r in records] == [{"commit": commit, "dirty": False}, {"commit": commit, "dirty": True}]
    assert {"torch", "lightning", "numpy", "pandas", "mlflow"} <= set(records[0]["packages"])
    raw = text_project / "data/rotten-tomatoes/raw"
    assert records[0]["inputs"]["raw"] == {"path": "data/rotten-tomatoes/raw", "md5": dvc_hash(raw)}
    assert records[0]["inputs"]["raw"]["md5"].endswith(".dir") and records[0]["inputs"]["prepared"]["md5"]
    assert (first.out_dir / "config.yaml").is_file()  # the resolved config, beside the outputs

    client = MlflowClient(f"sqlite:///{text_project / 'mlflow.db'}")
    run = client.get_run(second.run_id)
    assert run.data.tags["git_commit"] == commit and run.data.tags["git_dirty"] == "True"
    assert {"provenance.json", "config.yaml"} <= {a.path for a in client.list_artifacts(second.run_id)}
