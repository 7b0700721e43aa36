"""What a training reads (pipeline/training/reads.py): its resume key and its stage's DVC params agree."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO

from pipeline.config import compose
from pipeline.data.reads import data_keys
from pipeline.dvc_files import render_competition
from pipeline.training import reads
from pipeline.training.spec import FoldSpec

pytestmark = pytest.mark.fast
BASE = ["competition=animals", "model=cnn", "trainer=smoke", "tracking=none"]


def folder(*overrides: str):
    return FoldSpec.of(compose([*BASE, *overrides], root=REPO)).fold_state(0).folder


@pytest.mark.parametrize(
    "override",
    [
        "ensemble=mean",
        "tune.n_trials=3",
        "tracking.experiment=other",
        "out_dir=runs/elsewhere",
        "train.resume=false",
        "competition.models=[cnn]",
        "competition.submission.format=probabilities",
        "data.num_workers=2",
        "paths.cache=other-cache",
    ],
)
def test_a_setting_training_does_not_read_keeps_an_interrupted_fold_resumable(override):
    assert folder(override) == folder()


@pytest.mark.parametrize(
    "override",
    [
        "model.optimizer.lr=0.01",
        "trainer.max_epochs=3",
        "competition.metric=macro_f1",
        "augment=none",
        "tta=none",
        "seed=1",
    ],
)
def test_a_setting_training_reads_starts_its_folds_afresh(override):
    assert folder(override) != folder()


@pytest.mark.parametrize("name", ["animals", "rotten-tomatoes"])
def test_every_section_in_the_resume_key_is_a_dvc_param_of_the_training_stage(name):
    """The two come from one definition: what the key hashes, the rendered stage depends on."""
    comp_file = yaml.safe_load((REPO / "conf/competition" / f"{name}.yaml").read_text())
    params = yaml.safe_load(render_competition(REPO, name))["stages"]["train"]["do"]["params"]
    files = {next(iter(p)) if isinstance(p, dict) else p: p for p in params}
    listed = lambda f: next(iter(files[f].values())) or []  # noqa: E731  (None: the whole file)
    modality = comp_file.get("modality", "image")
    for group in reads.groups(modality):
        option = "${key}" if group == "model" else "${trainer}" if group == "trainer" else None
        assert any(f.startswith(f"conf/{group}/") and (option is None or option in f) for f in files), group
    assert set(listed("conf/config.yaml")) >= {"defaults", *reads.ROOT_SECTIONS}
    read = {k for k in comp_file if k not in (*reads.COMPETITION_UNREAD, "defaults")}
    assert set(listed(f"conf/competition/{name}.yaml")) == read
    if modality == "text":
        assert not any(f.startswith(("conf/augment/", "conf/tta/")) for f in files), "a text model reads neither"


@pytest.mark.parametrize("name", ["animals", "rotten-tomatoes", "ames"])
def test_what_prepare_reads_of_data_is_its_key_and_the_params_of_its_stage(name):
    """A by-hand run with another value prepares afresh; `dvc repro` reruns the stage; a loading setting does neither."""
    from pipeline.prepare import prepare_key

    modality = yaml.safe_load((REPO / "conf/competition" / f"{name}.yaml").read_text()).get("modality", "image")
    params = yaml.safe_load(render_competition(REPO, name))["stages"]["prepare"]["params"]
    listed = next(p["conf/config.yaml"] for p in params if isinstance(p, dict) and "conf/config.yaml" in p)
    assert listed == [f"data.{key}" for key in data_keys(modality)]
    assert ("data.image_memory_gb" in listed) is (modality == "image")

    key = lambda *overrides: prepare_key(compose([f"competition={name}", *overrides], root=REPO))  # noqa: E731
    other = {"limit_train_rows": 50, "image_memory_gb": 0.5, "image_cache_side": 256}
    for data_key in data_keys(modality):
        assert key(f"data.{data_key}={other[data_key]}") != key(), data_key
    assert key("data.num_workers=2", "data.num_threads=1") == key()
