"""`trainer.precision: auto` (pipeline/config/precision.py): bf16 only where the CPU computes it natively."""

from __future__ import annotations

import logging

import pytest

from pipeline.config import precision

pytestmark = pytest.mark.fast

ZEN3 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2 bmi2 sha_ni vaes\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


@pytest.mark.parametrize(
    "cpuinfo, expect", [(ZEN3, "32-true"), (SAPPHIRE_RAPIDS, "bf16-mixed"), ("", "32-true")], ids=["avx2", "bf16", "?"]
)
def test_auto_takes_bf16_only_where_the_cpu_has_it(tmp_path, cpuinfo, expect):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert precision.resolve("auto", "cpu", tmp_path / "cpuinfo") == expect


def test_an_explicit_precision_wins(tmp_path):
    (tmp_path / "cpuinfo").write_text(ZEN3)
    for given in ("bf16-mixed", "32-true", "16-mixed"):
        assert precision.resolve(given, "cpu", tmp_path / "cpuinfo") == given


def test_no_cpuinfo_means_no_native_bf16(tmp_path):
    assert precision.cpu_bf16_flag(tmp_path / "absent") is None


def test_the_composed_config_holds_the_choice_and_says_why(make_cfg, caplog):
    expect = "bf16-mixed" if precision.cpu_bf16_flag() else "32-true"
    precision._said.cache_clear()
    with caplog.at_level(logging.INFO, logger="pipeline.config.precision"):
        cfg = make_cfg("trainer=smoke", "tracking=none")
        make_cfg("trainer=smoke", "tracking=none")
    assert cfg.trainer.precision == expect
    said = [r.getMessage() for r in caplog.records if r.name == "pipeline.config.precision"]
    assert len(said) == 1 and said[0].startswith(f"trainer.precision auto: {expect}, as "), said  # said once, with why
    assert make_cfg("trainer=smoke", "trainer.precision=bf16-mixed").trainer.precision == "bf16-mixed"


def test_a_model_trained_in_16_bits_predicts_in_what_this_cpu_runs_fast():
    import torch

    from pipeline.inference.model import device_and_precision

    if torch.cuda.is_available():
        pytest.skip("checks the CPU path: this machine has a GPU")
    fast = precision.resolve("auto", "cpu")  # bf16-mixed with native bf16, else 32-true
    assert device_and_precision({"accelerator": "gpu", "precision": "16-mixed"}, "m") == ("cpu", fast)
    assert device_and_precision({"accelerator": "cpu", "precision": "bf16-mixed"}, "m") == ("cpu", fast)
    assert device_and_precision({"accelerator": "cpu", "precision": "32-true"}, "m") == ("cpu", "32-true")


def test_the_gpu_presets_resolve_for_the_cpu_when_run_there(make_cfg):
    """trainer=ddp with trainer.accelerator=cpu (DDP tested on a CPU) gets the CPU's fast precision, not bf16."""
    cfg = make_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.sync_batchnorm=false")
    assert cfg.trainer.precision == precision.resolve("auto", "cpu")
