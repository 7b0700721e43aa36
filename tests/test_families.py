"""The user's own networks, losses and estimators, and families from installed packages (family: network /
estimator, the `podium.families` entry points): trained by the real pipeline on shrunk demo data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, podium

from pipeline.config import compose
from pipeline.errors import PodiumError
from pipeline.models import family, family_names
from pipeline.models.targets import construct

SMOKE = ["trainer=smoke", "tracking=none"]


def with_example_models(root: Path) -> Path:
    """The project's own example networks (competitions/<name>/models.py), as a user's project has them."""
    for name in ("animals", "rotten-tomatoes"):
        (root / "competitions" / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "competitions" / name / "models.py", root / "competitions" / name / "models.py")
    return root


def train(root: Path, *overrides: str):
    from pipeline.training.train import train as train_stage

    return train_stage(compose([*SMOKE, *overrides], root=root))


# -- fast: the protocol's parts --------------------------------------------------------------------------


@pytest.mark.fast
def test_what_podium_knows_goes_to_the_parameters_of_those_names_and_the_yaml_wins():
    class Net:
        def __init__(self, channels, n_outputs, width=8):
            self.args = (channels, n_outputs, width)

    known = {"channels": 3, "height": 28, "width": 28, "n_outputs": 10}
    assert construct(Net, {}, known, "model.net", "x.yaml").args == (3, 10, 28)  # width: Podium's image width
    assert construct(Net, {"width": 16}, known, "model.net", "x.yaml").args == (3, 10, 16)

    class Open:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    assert construct(Open, {"depth": 2}, known, "model.net", "x.yaml").kwargs == {**known, "depth": 2}
    with pytest.raises(
        PodiumError,
        match=r"Cannot build model\.net \(.*Net\(channels, n_outputs, width=8\)\): "
        r"got an unexpected keyword argument 'depth'",
    ):
        construct(Net, {"depth": 2}, known, "model.net", "x.yaml")


@pytest.mark.fast
def test_every_built_in_family_goes_through_one_record():
    names = family_names()
    assert names[:11] == [
        "cnn", "efficientnet", "tfidf", "lstm", "transformer", "lightgbm", "xgboost", "catboost", "mlp", "network",
        "estimator",
    ]  # fmt: skip
    for name in names[:11]:
        record = family(name)
        builders = record.builders() if record.kind == "estimator" or record.modality != "image" else None
        if record.modality == "tabular" and record.kind == "network":
            assert hasattr(builders, "build_table") and hasattr(builders, "table_tensors")
        elif record.modality == "tabular":  # kept in the library's own format, not skops
            assert all(hasattr(builders, a) for a in ("fit", "FILES", "save", "load"))
        elif record.kind == "estimator":
            assert hasattr(builders, "fit")
        elif record.modality == "text":
            assert hasattr(builders, "make_tokenizer") and hasattr(builders, "build_text")
    assert family("network").reads("image") and family("network").reads("text") and not family("cnn").reads("text")


@pytest.mark.fast
def test_a_yaml_list_becomes_the_tuple_an_estimator_expects(project):
    from pipeline.models.estimator import build

    cfg = compose(["competition=rotten-tomatoes", "model=tfidf_svd_hgb", *SMOKE], root=project)
    estimator = build(cfg.model, project, seed=7)
    params = estimator.get_params()
    assert params["tfidfvectorizer__ngram_range"] == (1, 2)  # YAML [1, 2]; scikit-learn refuses a list
    assert params["truncatedsvd__random_state"] == 7 and params["histgradientboostingclassifier__random_state"] == 7


# -- integration: trained by the pipeline ------------------------------------------------------------------


@pytest.fixture
def user_project(project, rt_data):
    """The animals project with the text demo's data too and the example networks in competitions/."""
    shutil.copytree(rt_data, project / "data" / rt_data.name)
    return with_example_models(project)


def test_a_network_of_the_users_project_trains_joins_the_ensemble_and_submits(user_project):
    root = user_project
    common = [*SMOKE, "competition=animals", "tracking.uri=sqlite:///mlflow.db"]
    assert podium(root, "train", *common, "model=rescnn", "out_dir=outputs/animals/models/rescnn")[0] == 0
    assert podium(root, "train", *common, "model=cnn", "out_dir=outputs/animals/models/cnn")[0] == 0
    oof = pd.read_parquet(root / "outputs/animals/models/rescnn/oof.parquet")
    probabilities = oof.filter(like="prob_").to_numpy()
    assert len(oof) == 600 and np.allclose(probabilities.sum(1), 1)
    code, _ = podium(root, "ensemble", *common, "ensemble.members=[cnn,rescnn]", "out_dir=outputs/animals/ensemble")
    assert code == 0
    code, printed = podium(root, "submit", *common, "out_dir=outputs/animals/submission")
    assert code == 0 and "rescnn" in printed
    submission = pd.read_csv(root / "submissions/animals/submission.csv", dtype=str)
    sample = pd.read_csv(root / "data/animals/raw/sample_submission.csv", dtype=str)
    assert submission["id"].tolist() == sample["id"].tolist()


def test_a_text_network_from_a_plain_module_elsewhere(user_project, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    text_cnn = (REPO / "competitions/rotten-tomatoes/models.py").read_text()
    (elsewhere / "my_text_nets.py").write_text(text_cnn)
    monkeypatch.syspath_prepend(str(elsewhere))  # an installed package, or a module on PYTHONPATH
    result = train(
        user_project,
        "competition=rotten-tomatoes",
        "model=textcnn",
        "model.net._target_=my_text_nets.TextCNN",
        "out_dir=runs/textcnn",
    )
    assert 0.5 < result.cv_score <= 1 and len(result.fold_scores) == 2


def test_a_custom_loss_is_the_one_trained_on(user_project):
    def first_loss(*overrides):
        result = train(user_project, "competition=animals", "model=rescnn", *overrides)
        return pd.read_csv(result.out_dir / "history.csv")["train/loss"].to_numpy()

    default = first_loss("model.loss=null", "out_dir=runs/default")
    same = first_loss("model.loss.label_smoothing=0.0", "out_dir=runs/same")  # CrossEntropyLoss: the task's own
    smoothed = first_loss("model.loss.label_smoothing=0.5", "out_dir=runs/smoothed")
    np.testing.assert_allclose(same, default, rtol=1e-5)
    assert (np.abs(smoothed - default) > 1e-3).all()  # label smoothing keeps the loss off zero: another curve


def test_a_scikit_learn_pipeline_by_target_on_the_text_demo(user_project):
    overrides = ["competition=rotten-tomatoes", "model=tfidf_svd_hgb", "model.estimator._args_.2.max_iter=20"]
    first = train(user_project, *overrides, "out_dir=runs/hgb")
    again = train(user_project, *overrides, "out_dir=runs/hgb_again")
    oof = pd.read_parquet(first.out_dir / "oof.parquet")
    assert {"prob_rotten", "prob_fresh"} <= set(oof.columns) and np.allclose(oof.filter(like="prob_").sum(axis=1), 1)
    assert 0.5 < first.cv_score <= 1
    pd.testing.assert_frame_equal(oof, pd.read_parquet(again.out_dir / "oof.parquet"))  # seeded: repeatable


# -- entry points ---------------------------------------------------------------------------------------------

PACKAGE = """
from dataclasses import dataclass

from pipeline.config.schema import ModelBase
from pipeline.models import Family


@dataclass
class TinyConfig(ModelBase):
    hidden: int = 32


FAMILY = Family("tiny_mlp", "podium_tiny.builders", "image", "network", TinyConfig, at_least={"hidden": (1, "units")})
"""

BUILDERS = """
from torch import nn


def build_image(model, channels, height, width, n_outputs, root):
    hidden = model.hidden
    return nn.Sequential(
        nn.Flatten(), nn.Linear(channels * height * width, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs)
    )
"""


@pytest.fixture
def installed_family(tmp_path_factory, monkeypatch):
    """A package `podium-tiny` registering family tiny_mlp through its entry point, as pip would install it."""
    site = tmp_path_factory.mktemp("site")
    (site / "podium_tiny").mkdir()
    (site / "podium_tiny/__init__.py").write_text(PACKAGE)
    (site / "podium_tiny/builders.py").write_text(BUILDERS)
    info = site / "podium_tiny-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: podium-tiny\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[podium.families]\ntiny_mlp = podium_tiny:FAMILY\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def test_a_family_from_an_installed_package_trains_and_is_imported_only_when_used(installed_family, project):
    assert "tiny_mlp" in family_names() and "podium_tiny" not in sys.modules
    optimizer = {"_target_": "torch.optim.Adam", "lr": 1e-3}
    (project / "conf/model/tiny.yaml").write_text(
        yaml.safe_dump({"name": "tiny", "family": "tiny_mlp", "hidden": 16, "optimizer": optimizer})
    )
    with pytest.raises(PodiumError, match=r"model\.hidden=0 is out of range; it must be at least 1 \(units\)"):
        compose(["competition=animals", "model=tiny", "model.hidden=0"], root=project)  # the package's own limit
    result = train(project, "competition=animals", "model=tiny", "out_dir=runs/tiny")
    assert len(result.fold_scores) == 2 and "podium_tiny.builders" in sys.modules

    # `podium --help` does not look for families, let alone import one
    probe = textwrap.dedent("""
        import contextlib, io, sys
        from pipeline.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["--help"])
            except SystemExit:
                pass
        print(sorted(m for m in sys.modules if m.startswith(("podium_tiny", "torch", "importlib.metadata"))))
    """)
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "[]"


# -- pipeline files rendered from config ------------------------------------------------------------------


@pytest.mark.fast
def test_the_demos_pipeline_files_are_their_render():
    from pipeline.dvc_files import stale

    assert stale(REPO) == [], "run `podium pipeline render` (the config changed, or a file was edited by hand)"


@pytest.mark.fast
def test_a_users_network_is_a_dependency_of_its_own_stage_alone(tmp_path):
    from pipeline.dvc_files import render_competition

    shutil.copytree(REPO / "conf", tmp_path / "conf")
    with_example_models(tmp_path)
    comp = yaml.safe_load((REPO / "conf/competition/animals.yaml").read_text())
    stages = yaml.safe_load(render_competition(tmp_path, "animals", {**comp, "models": ["cnn", "rescnn"]}))["stages"]
    assert stages["train"]["foreach"] == {
        "cnn": {"code": "pipeline/models/cnn.py"},
        "rescnn": {"code": "competitions/animals/models.py"},
    }
    assert "${item.code}" in stages["train"]["do"]["deps"]
    assert "ensemble.seeds=separate" not in stages["ensemble"]["cmd"]  # the competition's own setting, in its YAML


@pytest.mark.fast
def test_every_file_of_a_models_own_code_is_a_dependency_of_its_stage(tmp_path):
    """A network in models.py and its loss in losses.py: both files are deps of that model's stage, and
    a model of one file gets it again in the extra slot (DVC takes a repeated dependency once)."""
    from pipeline.dvc_files import render_competition

    shutil.copytree(REPO / "conf", tmp_path / "conf")
    with_example_models(tmp_path)
    (tmp_path / "competitions/animals/losses.py").write_text("import torch\n\nFocal = torch.nn.CrossEntropyLoss\n")
    model = yaml.safe_load((REPO / "conf/model/rescnn.yaml").read_text())
    model["loss"] = {"_target_": "competitions.animals.losses.Focal"}
    (tmp_path / "conf/model/rescnn.yaml").write_text(yaml.safe_dump(model))
    comp = yaml.safe_load((REPO / "conf/competition/animals.yaml").read_text())
    stages = yaml.safe_load(render_competition(tmp_path, "animals", {**comp, "models": ["cnn", "rescnn"]}))["stages"]
    assert stages["train"]["foreach"] == {
        "cnn": {"code": "pipeline/models/cnn.py", "code_2": "pipeline/models/cnn.py"},
        "rescnn": {"code": "competitions/animals/models.py", "code_2": "competitions/animals/losses.py"},
    }
    assert {"${item.code}", "${item.code_2}"} <= set(stages["train"]["do"]["deps"])


@pytest.mark.slow
def test_dvc_repro_trains_the_users_network_and_an_edit_of_its_file_reruns_exactly_its_stage(project):
    """A git + DVC project whose animals pipeline trains cnn and the user's rescnn (smoke preset)."""
    root = with_example_models(project)
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        REPO / "competitions/animals", root / "competitions/animals", dirs_exist_ok=True
    )  # build.py, tuned/
    shutil.copy(REPO / "competitions/animals/tuned/cnn.yaml", root / "competitions/animals/tuned/rescnn.yaml")
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("trainer: cpu", "trainer: smoke"))
    config = root / "conf/competition/animals.yaml"
    config.write_text(
        config.read_text()
        .replace("models: [cnn, efficientnet]", "models: [cnn, rescnn]")
        .replace("  cnn: [0, 1, 2] ", "  cnn: [0] ")
    )
    assert podium(root, "pipeline", "render")[0] == 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def dvc(*args):
        out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout + out.stderr

    shutil.rmtree(root / "data/animals")  # the pipeline's data stage builds it (never into the shared, linked images)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc("init", "-q")
    pipeline = "competitions/animals/dvc.yaml"
    ran = set(re.findall(r"Running stage '([^']+)'", dvc("repro", f"{pipeline}:ensemble")))
    assert {f"{pipeline}:train@cnn", f"{pipeline}:train@rescnn", f"{pipeline}:ensemble"} <= ran
    members = json.loads((root / "outputs/animals/ensemble/metrics.json").read_text())["members"]
    assert "rescnn" in members

    # An edit that changes the network's function (the YAML sets `blocks`, so a new default there would
    # change nothing): its stage reruns, and its new predictions rerun the ensemble; cnn's stage does not.
    models = root / "competitions/animals/models.py"
    pooled_by_mean = models.read_text()
    models.write_text(pooled_by_mean.replace(".mean(dim=(2, 3))", ".amax(dim=(2, 3))"))
    assert models.read_text() != pooled_by_mean
    oof = root / "outputs/animals/models/rescnn/oof.parquet"
    before = oof.read_bytes()
    ran = set(re.findall(r"Running stage '([^']+)'", dvc("repro", f"{pipeline}:ensemble")))
    assert ran == {f"{pipeline}:train@rescnn", f"{pipeline}:ensemble"}
    assert oof.read_bytes() != before


@pytest.mark.fast
def test_render_refuses_a_listed_model_without_its_file(tmp_path, capsys, monkeypatch):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    config = tmp_path / "conf/competition/animals.yaml"
    config.write_text(config.read_text().replace("models: [cnn, efficientnet]", "models: [cnn, cnnn]"))
    monkeypatch.setenv("PODIUM_ROOT", str(tmp_path))
    assert podium(tmp_path, "pipeline", "render")[0] == 2
    assert "Model 'cnnn' of `models:` has no file conf/model/cnnn.yaml" in capsys.readouterr().err
    assert not (tmp_path / "competitions").exists()  # nothing written


@pytest.mark.fast
def test_a_process_moving_to_another_project_imports_that_projects_module_and_keeps_the_rest(tmp_path):
    import numpy

    from pipeline.models.targets import import_target

    for name, width in (("a", 8), ("b", 16)):
        folder = tmp_path / name / "competitions" / "demo"
        folder.mkdir(parents=True)
        (folder / "models.py").write_text(f"class Net:\n    width = {width}\n")
    first = import_target("competitions.demo.models.Net", "model.net", "x.yaml", tmp_path / "a")
    second = import_target("competitions.demo.models.Net", "model.net", "x.yaml", tmp_path / "b")
    assert (first.width, second.width) == (8, 16)  # not project a's module, cached
    assert sys.modules["numpy"] is numpy and "pipeline.models.targets" in sys.modules  # nothing else forgotten


@pytest.mark.fast
def test_moving_to_another_project_keeps_modules_of_the_old_folder_imported_through_another_path(tmp_path, monkeypatch):
    """A module under the old project that came through its own import-path entry (as pytest imports
    tests/test_*.py from a checkout used as a project) is not the project's: forgetting it would leave two
    copies, and multiprocessing could no longer pickle its functions by name."""
    from pipeline.models.targets import import_target

    helpers = tmp_path / "a" / "tests"
    helpers.mkdir(parents=True)
    (helpers / "podium_helper_mod.py").write_text("def work():\n    return 1\n")
    (tmp_path / "a" / "competitions" / "demo").mkdir(parents=True)
    (tmp_path / "a" / "competitions" / "demo" / "models.py").write_text("class Net:\n    pass\n")
    (tmp_path / "b").mkdir()
    monkeypatch.syspath_prepend(str(helpers))
    import podium_helper_mod

    import_target("competitions.demo.models.Net", "model.net", "x.yaml", tmp_path / "a")
    import_target("math.floor", "model.net", "x.yaml", tmp_path / "b")
    try:
        assert sys.modules["podium_helper_mod"] is podium_helper_mod  # kept: not imported from the project root
        assert "competitions.demo.models" not in sys.modules  # forgotten: the old project's own module
    finally:
        sys.modules.pop("podium_helper_mod", None)


@pytest.mark.fast
def test_the_code_a_model_depends_on_is_its_projects_files_nested_ones_included(tmp_path):
    from pipeline.models.targets import project_files

    (tmp_path / "competitions/demo").mkdir(parents=True)
    (tmp_path / "competitions/demo/steps.py").write_text("class Clean:\n    pass\n")
    model = {
        "estimator": {
            "_target_": "sklearn.pipeline.make_pipeline",
            "_args_": [{"_target_": "competitions.demo.steps.Clean"}, {"_target_": "sklearn.linear_model.Ridge"}],
        }
    }
    assert project_files(model, tmp_path) == ["competitions/demo/steps.py"]  # scikit-learn is installed, not yours
    assert project_files({"net": {"_target_": "torch.nn.Linear"}}, tmp_path) == []


@pytest.mark.fast
def test_an_edit_of_the_users_network_never_resumes_from_the_old_ones_checkpoints(user_project):
    from pipeline.training.spec import FoldSpec

    cfg = compose(["competition=animals", "model=rescnn", *SMOKE], root=user_project)
    before = FoldSpec.of(cfg).checkpoints
    models = user_project / "competitions/animals/models.py"
    models.write_text(models.read_text() + "\n# edited\n")
    after = FoldSpec.of(cfg).checkpoints
    assert after != before and after.parent == before.parent


@pytest.mark.fast
def test_render_adds_the_tuned_file_a_new_model_reads_and_leaves_out_a_competition_without_data(tmp_path):
    from pipeline.dvc_files import render_root, stale

    shutil.copytree(REPO / "conf", tmp_path / "conf")
    with_example_models(tmp_path)
    config = tmp_path / "conf/competition/animals.yaml"
    config.write_text(config.read_text().replace("models: [cnn, efficientnet]", "models: [cnn, rescnn]"))
    tuned = tmp_path / "competitions/animals/tuned/rescnn.yaml"
    assert tuned in stale(tmp_path)  # the train stage reads it: a missing params file fails `dvc repro`
    assert podium(tmp_path, "pipeline", "render")[0] == 0
    assert yaml.safe_load(tuned.read_text()) == {"overrides": {}} and stale(tmp_path) == []
    assert "outputs/animals" not in render_root(tmp_path)  # no raw files and no build script: not in the leaderboard
