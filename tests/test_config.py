"""Configs compose from the real conf/ and are refused, before any work, when wrong."""

import shutil
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REPO

from pipeline.config import compose
from pipeline.errors import PodiumError

pytestmark = pytest.mark.fast  # no training, no servers


def test_default_config_composes_with_typed_values(make_cfg):
    cfg = make_cfg()
    assert cfg.competition.name == "animals" and cfg.model.family == "cnn"
    assert cfg.trainer.max_epochs == cfg.model.max_epochs  # the model's recipe sets the epochs
    assert cfg.paths.root and cfg.out_dir.startswith("runs/animals/cnn/")


def test_overrides_use_hydra_grammar(make_cfg):
    cfg = make_cfg("model=efficientnet", "model.optimizer.lr=3e-4", "trainer.max_epochs=2", "augment=none")
    assert cfg.model.family == "efficientnet" and cfg.model.optimizer.lr == 3e-4
    assert cfg.model.scheduler.max_lr == 3e-4  # interpolation follows the override
    assert cfg.trainer.max_epochs == 2 and list(cfg.augment.transforms) == []


def test_a_model_key_without_model_goes_to_the_competitions_first_model(make_cfg):
    """conf/config.yaml's default model is the CNN; a table's first model has keys the CNN lacks."""
    cfg = make_cfg("competition=ames", "model.learning_rate=0.1", "model.params.num_leaves=7")
    assert cfg.model.name == "lightgbm" and cfg.model.learning_rate == 0.1 and cfg.model.params.num_leaves == 7
    cfg = make_cfg("competition=rotten-tomatoes", "model.max_epochs=2")
    assert cfg.model.name == "lstm" and cfg.model.max_epochs == 2


def test_smoke_preset_shrinks_data_folds_and_epochs(make_cfg):
    cfg = make_cfg("trainer=smoke")
    assert cfg.trainer.max_epochs == 1 and cfg.competition.cv.n_splits == 2 and cfg.data.limit_train_rows == 600


def test_experiment_preset_applies_last(make_cfg):
    cfg = make_cfg("experiment=animals_quick")
    assert cfg.trainer.max_epochs == 3 and cfg.competition.cv.n_splits == 3


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "model=resnet9000",
            r"'model/resnet9000' does not exist\. Valid choices for 'model': catboost, cnn, efficientnet",
        ),
        ("competition=titanic", r"Valid choices for 'competition': ames, animals"),
        ("+model.widht=64", r"`model\.widht`: Key 'widht' not in 'CNNConfig'\. Valid keys there: .*width"),
        (
            "+trainer.max_epoch=3",
            r"`trainer\.max_epoch`: not a flag of lightning.pytorch.Trainer \(did you mean max_epochs",
        ),
        ("model.dropout=lots", r"`model\.dropout`: Value 'lots' of type 'str' could not be converted to Float"),
        ("trainer.max_epochs=2.5", r"`trainer\.max_epochs`"),
        (
            "model.widht=64",
            r"override model\.widht=64: model \(from conf/model/cnn\.yaml\) has no key 'widht'\. Did you mean "
            r"model\.width\? Its keys: .*To add a key that file lacks on purpose, prefix the override with \+",
        ),
        (
            "data.num_worker=2",
            r"data \(from conf/config\.yaml\) has no key 'num_worker'\. Did you mean data\.num_workers\?",
        ),
        (  # the competition's first model (no `model=`) is the one the key is looked up in, and it is found there
            "competition=ames model.learnin_rate=0.1",
            r"model \(from conf/model/lightgbm\.yaml\) has no key 'learnin_rate'\. Did you mean model\.learning_rate\?",
        ),
        ("competition.metric=f2", r"competition\.metric is 'f2'; valid values are accuracy"),
        (
            "competition.task=ranking",
            r"competition\.task is 'ranking'; valid values are binary, multiclass, regression",
        ),
        ("competition.direction=minimize", r"metric accuracy is to maximize"),
        (
            "ensemble.method=blend",
            r"ensemble\.method is 'blend'; valid values are auto, mean, rank_mean, weighted, hill_climb, stack",
        ),
        ("ensemble.hill_climb.init=top", r"ensemble\.hill_climb\.init is 'top'; valid values are empty, best, random"),
        ("ensemble.seeds=both", r"ensemble\.seeds is 'both'; valid values are average, separate"),
        (
            "ensemble.weighted.solver=BFGS",
            r"ensemble\.weighted\.solver is 'BFGS'; valid values are Powell, Nelder-Mead, SLSQP",
        ),
        ("ensemble.candidates=[mean,vote]", r"ensemble\.candidates is 'vote'"),
        ("model.family=vit", r"model\.family is 'vit'; valid families are cnn, efficientnet"),
        ("model=[", r"Invalid configuration or override"),
    ],
)
def test_bad_config_is_refused_with_key_and_choices(make_cfg, override, expected):
    with pytest.raises(PodiumError, match=expected):
        make_cfg(*override.split())


def test_cli_reports_config_errors_without_traceback(project):
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "config", "model=nope"], cwd=project, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "Valid choices for 'model': catboost, cnn, efficientnet" in out.stderr and "Traceback" not in out.stderr


def test_help_lists_commands_and_imports_nothing_heavy():
    code = (
        "import sys, time; t=time.perf_counter(); from pipeline.cli import build_parser; build_parser(); "
        "heavy=[m for m in ('torch','lightning','mlflow','sklearn','hydra','pandas') if m in sys.modules]; "
        "print(heavy, time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("[]"), out.stdout
    started = time.perf_counter()
    help_text = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("prepare", "train", "ensemble", "submit", "score", "config", "ui"):
        assert command in help_text
    print(f"podium --help: {time.perf_counter() - started:.2f} s")


def test_any_lightning_trainer_flag_is_reachable_and_checked(make_cfg):
    import lightning.pytorch as L

    cfg = make_cfg("+trainer.log_every_n_steps=7", "+trainer.benchmark=false", "trainer.max_epochs=1")
    assert cfg.trainer.log_every_n_steps == 7 and cfg.trainer.benchmark is False
    trainer = L.Trainer(
        **{k: v for k, v in cfg.trainer.items() if v is not None}, logger=False
    )  # as train_fold builds it
    assert trainer.log_every_n_steps == 7
    with pytest.raises(
        PodiumError,
        match=r"trainer.log_every_n_step`: not a flag of lightning.pytorch.Trainer \(did you mean log_every_n_steps",
    ):
        make_cfg("+trainer.log_every_n_step=7")
    with pytest.raises(PodiumError, match=r"trainer.callbacks is set by Podium itself"):
        make_cfg("+trainer.callbacks=[]")


# -- refusals of what conf/ files say (issue 17) -------------------------------------------------------


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_competition_name_must_equal_its_file_name(project, make_cfg):
    animals = project / "conf" / "competition" / "animals.yaml"
    (animals.parent / "wrongname.yaml").write_text(animals.read_text())  # a copy whose name still says animals
    with pytest.raises(
        PodiumError,
        match=r"conf/competition/wrongname\.yaml says `name: animals`, but a competition's "
        r"name must equal its file name .*overwrite outputs/animals/.*Set `name: wrongname`",
    ):
        make_cfg("competition=wrongname")
    with pytest.raises(
        PodiumError, match=r"competition\.name=other on the command line .*Remove the competition\.name override"
    ):
        make_cfg("competition.name=other")
    edit(animals.parent / "wrongname.yaml", "name: animals", "name: wrongname")
    assert make_cfg("competition=wrongname").competition.name == "wrongname"


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "competition/animals.yaml",
            "  height: 28",
            "\theight: 28",
            r"Invalid YAML in conf/competition/animals\.yaml, line \d+, column 1: found character '\\t'.*Indent with spaces, not tabs",
        ),
        (
            "model/cnn.yaml",
            "depth: 3",
            "depth: [3",
            r"Invalid YAML in conf/model/cnn\.yaml, line \d+, column \d+: .*"
            r"that starts on line \d+.*close any open bracket or quote",
        ),
        (
            "config.yaml",
            "\nseed: 0",
            "\nseed: 0\nseed: 1",
            r"conf/config\.yaml, line \d+, column 1: found duplicate key seed.*Remove one",
        ),
    ],
)
def test_yaml_syntax_error_names_file_line_and_column(project, make_cfg, file, old, new, expected):
    edit(project / "conf" / file, old, new)
    with pytest.raises(PodiumError, match=expected):
        make_cfg()


@pytest.mark.parametrize(
    "classes, expected",
    [
        (
            "[true, false]",
            r"holds true \(a YAML boolean\), false \(a YAML boolean\), not text.*classes: \['true', 'false'\]",
        ),
        ("[yes, no]", r"holds true \(a YAML boolean\), false \(a YAML boolean\).*Quote every class name"),
        (
            "[01, 02, 1e5, 1.0, null]",
            r"holds 1 \(a YAML integer\), 2 \(a YAML integer\), 100000\.0 \(a YAML float\), "
            r"1\.0 \(a YAML float\), null \(a YAML null\).*\['01', '02'\]",
        ),
        ("[cat, cat, dog]", r"competition\.classes in conf/competition/animals\.yaml lists 'cat' more than once"),
        (
            "[cat, '', dog]",
            r"competition\.classes in conf/competition/animals\.yaml has an empty class name at position 2",
        ),
    ],
)
def test_class_names_must_be_text_as_yaml_reads_them(project, make_cfg, classes, expected):
    edit(
        project / "conf" / "competition" / "animals.yaml",
        "classes: [bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra]",
        f"classes: {classes}",
    )
    with pytest.raises(PodiumError, match=expected):
        make_cfg()


TEXT = "competition=rotten-tomatoes"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["trainer.devices=0"],
            r"trainer\.devices=0 is out of range; it must be a positive number of devices, -1 for every",
        ),
        (["trainer.devices=-2"], r"trainer\.devices=-2 is out of range"),
        (["trainer.num_nodes=0"], r"trainer\.num_nodes=0 is out of range; it must be at least 1"),
        (["trainer.accumulate_grad_batches=0"], r"trainer\.accumulate_grad_batches=0 is out of range"),
        (
            ["model.width=0"],
            r"model\.width=0 is out of range; it must be at least 1 .*Fix it in conf/model/cnn\.yaml or override it \(model\.width=\.\.\.\)",
        ),
        (["model.depth=0"], r"model\.depth=0 is out of range; it must be at least 1"),
        (["model.convs_per_block=0"], r"model\.convs_per_block=0 is out of range"),
        (["model.hidden=-1"], r"model\.hidden=-1 is out of range; it must be at least 0 \(0 for no dense layer"),
        (
            ["model=efficientnet", "model.input_size=16"],
            r"model\.input_size=16 is out of range; it must be at least 32",
        ),
        (
            [TEXT, "model=lstm", "model.max_length=0"],
            r"model\.max_length=0 is out of range; it must be at least 1 .*conf/model/lstm\.yaml",
        ),
        (
            [TEXT, "model=lstm", "model.vocab_size=0"],
            r"model\.vocab_size=0 is out of range; it must be at least 1 \(words kept; 0 leaves only \[UNK\]\)",
        ),
        ([TEXT, "model=lstm", "model.hidden_size=0"], r"model\.hidden_size=0 is out of range"),
        ([TEXT, "model=lstm", "model.embedding_dim=0"], r"model\.embedding_dim=0 is out of range"),
        ([TEXT, "model=lstm", "model.layers=0"], r"model\.layers=0 is out of range"),
        (
            [TEXT, "model=transformer", "model.max_length=0"],
            r"model\.max_length=0 is out of range; it must be at least 3 .*special tokens",
        ),
        ([TEXT, "model=transformer", "model.freeze_layers=-1"], r"model\.freeze_layers=-1 is out of range"),
        ([TEXT, "model=tfidf", "model.min_df=0"], r"model\.min_df=0 is out of range"),
        ([TEXT, "model=tfidf", "model.ngram_range=[2,1]"], r"model\.ngram_range=\[2, 1\] is out of range"),
        ([TEXT, "model=tfidf", "model.C=0"], r"model\.C=0\.0 is out of range"),
        (["data.num_workers=-1"], r"data\.num_workers=-1 is out of range"),
        (["tune.grace_period=0"], r"tune\.grace_period=0 is out of range; it must be at least 1 second"),
        (["tune.heartbeat_interval=0"], r"tune\.heartbeat_interval=0 is out of range; it must be at least 1 second"),
        (["competition.image.height=0"], r"competition\.image\.height=0 is out of range; it must be at least 1 pixel"),
    ],
)
def test_non_positive_sizes_are_out_of_range(make_cfg, overrides, expected):
    with pytest.raises(PodiumError, match=expected):
        make_cfg(*overrides)


def test_sizes_at_their_limits_compose(make_cfg):
    assert make_cfg("trainer.devices=-1").trainer.devices == -1  # every visible GPU (the ddp preset's default)
    assert make_cfg("model.hidden=0", "model.depth=4").model.depth == 4  # 28 -> 14 -> 7 -> 3 -> 1 pixels
    assert make_cfg("model=efficientnet", "model.input_size=32").model.input_size == 32
    assert make_cfg(TEXT, "model=lstm", "model.max_length=1").model.max_length == 1


def test_cnn_deeper_than_the_images_is_refused(make_cfg):
    with pytest.raises(
        PodiumError,
        match=r"model\.depth=5 is out of range; it must be at most 4 for the competition's 28x28 "
        r"images .*depth 5 needs images of at least 32x32 pixels.*conf/model/cnn\.yaml",
    ):
        make_cfg("model.depth=5")
    with pytest.raises(PodiumError, match=r"at most 3 for the competition's 28x12 images"):
        make_cfg("competition.image.width=12", "model.depth=4")
    assert make_cfg("model.depth=5", "competition.image.height=32", "competition.image.width=32").model.depth == 5


def test_an_experiment_outranks_the_competitions_own_overrides(tmp_path):
    """animals' `overrides:` set tta=flip and ensemble.seeds=separate; an experiment the user picks wins over both."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "conf/experiment/plain.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /tta: none\n  - _self_\nensemble:\n  seeds: average\n"
    )
    own = compose(["competition=animals"], root=tmp_path)
    assert len(own.tta.views) > 0 and own.ensemble.seeds == "separate"
    picked = compose(["competition=animals", "experiment=plain"], root=tmp_path)
    assert len(picked.tta.views) == 0 and picked.ensemble.seeds == "average"
    line = compose(["competition=animals", "experiment=plain", "ensemble.seeds=separate"], root=tmp_path)
    assert line.ensemble.seeds == "separate", "the command line still wins"


def test_podium_config_prints_only_what_the_competitions_modality_reads():
    from conftest import podium

    code, text_printed = podium(REPO, "config", "competition=rotten-tomatoes")
    shown = yaml.safe_load(text_printed)
    assert code == 0 and "augment" not in shown and "tta" not in shown and "image" not in shown["competition"]
    assert shown["competition"]["text"]["column"] == "text"
    code, image_printed = podium(REPO, "config", "competition=animals")
    shown = yaml.safe_load(image_printed)
    assert code == 0 and "augment" in shown and "tta" in shown and "text" not in shown["competition"]
