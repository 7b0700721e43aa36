"""End to end: the real `dvc repro` in a fresh git repository, on the smoke preset.

One scenario in steps, since each step builds on the previous one's outputs: a fresh clone runs
the three demo competitions' pipelines and the leaderboard; a second repro runs nothing; a model
config change reruns exactly that model's training, the ensemble and the submission; `dvc exp
run -S` runs an experiment whose metrics `dvc exp show` lists. The text competition trains the
LSTM and a tiny random Transformer (the packaged MiniLM has its own test in test_text.py).
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
import pandas as pd
import pytest
import yaml

from pipeline.config import compose
from pipeline.dvc_files import rendered
from pipeline.submit import score_file, submission_path
from pipeline.tracking import tracking_uri

REPO = Path(__file__).resolve().parents[1]
ANIMALS = "competitions/animals/dvc.yaml:"
TEXT = "competitions/rotten-tomatoes/dvc.yaml:"
ANIMAL_STAGES = {
    ANIMALS + s for s in ("data", "prepare", "train@cnn", "train@efficientnet", "ensemble", "submit", "bundle")
}
TEXT_STAGES = {
    TEXT + s
    for s in ("data", "prepare", "train@lstm", "train@transformer_tiny", "train@tfidf", "ensemble", "submit", "bundle")
}
TABLE = "competitions/ames/dvc.yaml:"
TABLE_STAGES = {
    TABLE + s
    for s in ("data", "prepare", "train@lightgbm", "train@xgboost", "train@catboost", "train@mlp", "ensemble", "submit")
} | {TABLE + "bundle"}
STAGES = ANIMAL_STAGES | TEXT_STAGES | TABLE_STAGES | {"leaderboard"}
pytestmark = pytest.mark.slow


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
    """cnn's training, the ensemble and the bundle (cnn's fitted folds changed) rerun; the submission too
    unless the blend came out the same (on smoke data the chosen blend may give cnn no weight); nothing else."""
    ran = ran_stages(output)
    chain = {ANIMALS + "train@cnn", ANIMALS + "ensemble", ANIMALS + "bundle"}
    assert chain <= ran <= chain | {ANIMALS + "submit", "leaderboard"}, output
    assert ANIMALS + "submit" in ran or f"Stage '{ANIMALS}submit' didn't change" in output


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git + DVC repository holding the project's pipeline files, set to the smoke preset."""
    root = tmp_path_factory.mktemp("clone")
    for name in ("conf", "competitions", "pipeline"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "dvc.lock"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("trainer: cpu", "trainer: smoke"))
    text = root / "conf/competition/rotten-tomatoes.yaml"  # seconds, not minutes: a tiny Transformer
    text.write_text(
        text.read_text().replace("models: [lstm, transformer, tfidf]", "models: [lstm, transformer_tiny, tfidf]")
    )
    for path, rendered_text in rendered(root).items():  # the pipeline files follow the model list
        path.write_text(rendered_text)
    tuned = root / "competitions/rotten-tomatoes/tuned"
    shutil.copy(tuned / "transformer.yaml", tuned / "transformer_tiny.yaml")  # every trained model has its (empty) file
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
    locked = set(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
    for pipeline_file in ("competitions/animals", "competitions/rotten-tomatoes", "competitions/ames"):
        locked |= {
            f"{pipeline_file}/dvc.yaml:{s}"
            for s in yaml.safe_load((repo / pipeline_file / "dvc.lock").read_text())["stages"]
        }
    assert locked == STAGES
    for folder in ("prepared", "models/cnn", "models/efficientnet", "ensemble", "submission"):
        saved = yaml.safe_load((repo / "outputs/animals" / folder / "config.yaml").read_text())
        assert saved["competition"]["cv"]["n_splits"] == 2 and "root" not in saved["paths"]  # the resolved smoke config

    cfg = compose(["trainer=smoke"], root=repo)
    score = score_file(cfg, submission_path(cfg))[
        cfg.competition.metric
    ]  # valid against the sample submission, scored on the solution
    leaderboard = json.loads((repo / "outputs/animals/submission/metrics.json").read_text())
    # the submit stage's own score is the file's, and twice chance (0.1 for 10 classes) at least: 0.41 measured
    assert leaderboard["rows"] == 1944 and score == pytest.approx(leaderboard["local_leaderboard"]) and score > 0.2
    ensemble = json.loads((repo / "outputs/animals/ensemble/metrics.json").read_text())
    # the competition's recipe: cnn trained with three seeds, blended as separate candidates
    assert list(ensemble["members"]) == ["cnn/seed_0", "cnn/seed_1", "cnn/seed_2", "efficientnet"]
    assert ensemble["cv"] == max(m["nested"] for m in ensemble["methods"].values())

    client = mlflow.MlflowClient(tracking_uri(cfg))
    runs = client.search_runs([client.get_experiment_by_name("animals").experiment_id])
    by_stage: dict[str, list] = {}
    for r in runs:
        by_stage.setdefault(r.data.tags.get("stage"), []).append(r)
    assert sorted(r.data.tags["model"] for r in by_stage["train"]) == ["cnn", "efficientnet"]
    assert (
        len(by_stage["train_fold"]) == 8
    )  # (cnn: 3 seeds + efficientnet) x 2 folds, each nested under its model's run
    parents = {r.info.run_id for r in by_stage["train"]}
    assert {r.data.tags["mlflow.parentRunId"] for r in by_stage["train_fold"]} == parents
    assert len(by_stage["ensemble"]) == 1 and len(by_stage["submit"]) == 1
    assert "leaderboard_accuracy" in by_stage["submit"][0].data.metrics

    text_cfg = compose(["trainer=smoke", "competition=rotten-tomatoes"], root=repo)
    text_scores = score_file(text_cfg, submission_path(text_cfg))
    text_score = text_scores[text_cfg.competition.metric]
    text_result = json.loads((repo / "outputs/rotten-tomatoes/submission/metrics.json").read_text())
    assert text_score == pytest.approx(text_result["local_leaderboard"]) and text_score > 0.6  # ROC AUC: 0.5 is chance
    assert text_result["metric"] == "roc_auc" and text_result["rows"] == 2849
    assert set(text_result["report"]["accuracy"]) == {"cv", "local_leaderboard"}
    assert list(text_scores) == ["roc_auc", "accuracy"], "podium score: the metric, then report_metrics"
    assert text_scores["accuracy"] == pytest.approx(text_result["report"]["accuracy"]["local_leaderboard"])
    text_runs = client.search_runs([client.get_experiment_by_name("rotten-tomatoes").experiment_id])
    assert sorted(r.data.tags["model"] for r in text_runs if r.data.tags.get("stage") == "train") == [
        "lstm",
        "tfidf",
        "transformer_tiny",
    ]
    table_cfg = compose(["trainer=smoke", "competition=ames"], root=repo)
    table_score = score_file(table_cfg, submission_path(table_cfg))["rmse"]  # of log1p(price): target.transform
    table_result = json.loads((repo / "outputs/ames/submission/metrics.json").read_text())
    # the sample submission's constant (the median price) scores 0.44; the trees on 600 houses well below
    assert table_score == pytest.approx(table_result["local_leaderboard"]) and table_score < 0.25
    prices = pd.read_csv(submission_path(table_cfg))["Sale_Price"]  # back in dollars, not in log space
    assert table_result["rows"] == 586 and prices.between(20_000, 800_000).all()
    board = (repo / "outputs/leaderboard.md").read_text()
    assert all(
        name in board for name in ("| animals | cnn", "| rotten-tomatoes | lstm", "| ames | catboost", "nested CV)")
    )

    # the local leaderboard score is shown only for the submission.csv it was computed on
    from pipeline.leaderboard import leaderboard_rows

    csv = repo / "submissions/animals/submission.csv"
    scored = csv.read_bytes()

    def row() -> list:
        return next(r for r in leaderboard_rows(repo / "outputs", repo) if r[0] == "animals" and "ensemble" in r[1])

    assert row()[6] == pytest.approx(leaderboard["local_leaderboard"])
    csv.write_bytes(scored.replace(b"\n", b"\r\n", 1))  # edited by hand after it was scored
    try:
        assert row()[6] == "stale: submission.csv changed since scored" and row()[7] == "-"
    finally:
        csv.write_bytes(scored)


def test_second_repro_runs_nothing(repo):
    output = dvc(repo, "repro")
    assert ran_stages(output) == set(), output


def test_model_config_change_reruns_that_model_ensemble_and_submission(repo):
    path = repo / "conf/model/cnn.yaml"
    path.write_text(path.read_text().replace("dropout: 0.2", "dropout: 0.3"))
    assert_reran_only_cnn_chain(dvc(repo, "repro"))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "cnn dropout 0.3"], repo)


def test_a_sweep_hands_its_best_parameters_to_the_next_repro(repo):
    """`podium tune` writes the tuned file; `dvc repro` retrains exactly that model with its values."""
    run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "tune",
            "competition=animals",
            "model=cnn",
            "trainer=smoke",
            "tune.n_trials=2",
            "tune.folds=1",
            "~tune.search_space.model.optimizer",
            "~tune.search_space.augment",
        ],
        repo,
    )
    tuned = yaml.safe_load((repo / "competitions/animals/tuned/cnn.yaml").read_text())["overrides"]
    assert set(tuned) == {"model.dropout", "model.width", "model.hidden"}
    assert_reran_only_cnn_chain(dvc(repo, "repro"))
    saved = yaml.safe_load((repo / "outputs/animals/models/cnn/config.yaml").read_text())
    assert (saved["model"]["dropout"], saved["model"]["width"], saved["model"]["hidden"]) == (
        tuned["model.dropout"],
        tuned["model.width"],
        tuned["model.hidden"],
    )
    assert saved["train"]["tuned_from"] == "competitions/animals/tuned/cnn.yaml"
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "tuned cnn"], repo)


def test_exp_run_set_param_and_metrics_show(repo):
    assert_reran_only_cnn_chain(dvc(repo, "exp", "run", "-S", "conf/model/cnn.yaml:convs_per_block=1"))
    shown = json.loads(dvc(repo, "exp", "show", "--json"))
    text = json.dumps(shown)
    assert "outputs/animals/models/cnn/metrics.json" in text and "local_leaderboard" in text
    metrics = dvc(repo, "metrics", "show")
    assert "outputs/animals/ensemble/metrics.json" in metrics and "local_leaderboard" in metrics


def test_fold_seed_change_reruns_everything_downstream(repo):
    path = repo / "conf/competition/animals.yaml"
    path.write_text(path.read_text().replace("seed: 42", "seed: 7"))
    output = dvc(repo, "repro")
    assert ran_stages(output) == ANIMAL_STAGES - {ANIMALS + "data"} | {"leaderboard"}, output


def test_dvc_plots_show_renders_the_curves_and_the_plots(repo):
    """`dvc plots show` draws each pipeline's `plots:` section from the stages' outputs: the mean
    validation curve of every model in one chart, and the PNGs."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr  # DVC warns of any plot it cannot load
    shown = json.loads(out.stdout)
    assert not shown.get("errors"), shown["errors"]  # the key is there only when a plot failed
    curves = {k: v for k, v in shown["data"].items() if "validation score per epoch" in k}
    # one chart per competition with a network trained by epochs (ames' mlp too); the trees have no curve
    assert len(curves) == 3 and all(v[0]["type"] == "vega" for v in curves.values())
    ames = curves[next(k for k in curves if "ames" in k)][0]["content"]["data"]["values"]
    mlp_curve = (repo / "outputs/ames/models/mlp/plots/curves.csv").read_text().splitlines()[1:]
    # a chart of one line carries no filename field: its rows are the mlp's curve, epoch by epoch
    assert [row["epoch"] for row in ames] == [line.split(",")[0] for line in mlp_curve]
    lines = {
        row["filename"] for row in curves[next(k for k in curves if "animals" in k)][0]["content"]["data"]["values"]
    }
    assert lines == {"cnn/plots/curves.csv", "efficientnet/plots/curves.csv"}  # a line per model
    images = {k for k in shown["data"] if k.endswith(".png")}
    for path in (
        "outputs/animals/models/cnn/plots/confusion_matrix.png",
        "outputs/animals/ensemble/plots/member_correlation.png",
        "outputs/rotten-tomatoes/models/tfidf/plots/class_scores.png",
        "outputs/ames/models/catboost/plots/residuals.png",
    ):
        assert any(k.endswith(path) for k in images), (path, sorted(shown))
    dvc(repo, "plots", "show", "-o", "dvc_plots")  # the page a person opens
    page = (repo / "dvc_plots" / "index.html").read_text()
    assert '<img src="static/workspace_outputs_animals_models_cnn_plots_confusion_matrix.png">' in page
