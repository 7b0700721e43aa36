"""Configs compose from the real conf/ and are refused, before any work, when wrong."""

import subprocess
import sys
import time

import pytest

from pipeline.errors import PodiumError


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


def test_smoke_preset_shrinks_data_folds_and_epochs(make_cfg):
    cfg = make_cfg("trainer=smoke")
    assert cfg.trainer.max_epochs == 1 and cfg.competition.cv.n_splits == 2 and cfg.data.limit_train_rows == 600


def test_experiment_preset_applies_last(make_cfg):
    cfg = make_cfg("experiment=animals_quick")
    assert cfg.trainer.max_epochs == 3 and cfg.competition.cv.n_splits == 3


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=resnet9000", r"'model/resnet9000' does not exist\. Valid choices for 'model': cnn, efficientnet"),
        ("competition=titanic", r"Valid choices for 'competition': animals"),
        ("+model.widht=64", r"`model\.widht`: Key 'widht' not in 'CNNConfig'\. Valid keys there: .*width"),
        ("+trainer.max_epoch=3", r"`trainer\.max_epoch`: not a flag of lightning.pytorch.Trainer \(did you mean max_epochs"),
        ("model.dropout=lots", r"`model\.dropout`: Value 'lots' of type 'str' could not be converted to Float"),
        ("trainer.max_epochs=2.5", r"`trainer\.max_epochs`"),
        ("model.widht=64", r"Could not override 'model\.widht'"),
        ("competition.metric=f2", r"competition\.metric is 'f2'; valid values are accuracy"),
        ("competition.task=ranking", r"competition\.task is 'ranking'; valid values are binary, multiclass, regression"),
        ("competition.direction=minimize", r"metric accuracy is to maximize"),
        ("ensemble.method=blend", r"ensemble\.method is 'blend'; valid values are auto, mean, rank_mean, weighted, hill_climb, stack"),
        ("ensemble.hill_climb.init=top", r"ensemble\.hill_climb\.init is 'top'; valid values are empty, best, random"),
        ("ensemble.seeds=both", r"ensemble\.seeds is 'both'; valid values are average, separate"),
        ("ensemble.weighted.solver=BFGS", r"ensemble\.weighted\.solver is 'BFGS'; valid values are Powell, Nelder-Mead, SLSQP"),
        ("ensemble.candidates=[mean,vote]", r"ensemble\.candidates is 'vote'"),
        ("model.family=vit", r"model\.family is 'vit'; valid families are cnn, efficientnet"),
        ("model=[", r"Invalid configuration or override"),
    ],
)
def test_bad_config_is_refused_with_key_and_choices(make_cfg, override, expected):
    with pytest.raises(PodiumError, match=expected):
        make_cfg(override)


def test_cli_reports_config_errors_without_traceback(project):
    out = subprocess.run([sys.executable, "-m", "pipeline", "config", "model=nope"], cwd=project,
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "Valid choices for 'model': cnn, efficientnet" in out.stderr and "Traceback" not in out.stderr


def test_help_lists_commands_and_imports_nothing_heavy():
    code = ("import sys, time; t=time.perf_counter(); from pipeline.cli import build_parser; build_parser(); "
            "heavy=[m for m in ('torch','lightning','mlflow','sklearn','hydra','pandas') if m in sys.modules]; "
            "print(heavy, time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("[]"), out.stdout
    started = time.perf_counter()
    help_text = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("prepare", "train", "ensemble", "submit", "score", "config", "ui"):
        assert command in help_text
    print(f"podium --help: {time.perf_counter() - started:.2f} s")


def test_any_lightning_trainer_flag_is_reachable_and_checked(make_cfg):
    import lightning.pytorch as L

    cfg = make_cfg("+trainer.log_every_n_steps=7", "+trainer.benchmark=false", "trainer.max_epochs=1")
    assert cfg.trainer.log_every_n_steps == 7 and cfg.trainer.benchmark is False
    trainer = L.Trainer(**{k: v for k, v in cfg.trainer.items() if v is not None}, logger=False)  # as train_fold builds it
    assert trainer.log_every_n_steps == 7
    with pytest.raises(PodiumError, match=r"trainer.log_every_n_step`: not a flag of lightning.pytorch.Trainer \(did you mean log_every_n_steps"):
        make_cfg("+trainer.log_every_n_step=7")
    with pytest.raises(PodiumError, match="trainer.callbacks is set by Podium itself"):
        make_cfg("+trainer.callbacks=[]")
