"""The GPU check's CPU path: every step of benchmarks/gpu_check.sh runs and prints its figures.

Speed itself is not asserted (timed tests flake); the script's figures are for people. What is
asserted: each family is measured against the plain loop in 32-true, and in bf16-mixed where the CPU
computes bf16 natively (emulated bf16 is several times slower, so it is left out and said so), and the DDP run's
out-of-fold and test files hold every id once, in order.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, project_with

from pipeline.config.precision import cpu_bf16_flag

pytestmark = pytest.mark.slow  # the benchmark scripts and the GPU check's CPU path


def test_gpu_check_runs_its_cpu_path(tmp_path, animals_data):
    root = project_with(tmp_path, animals_data)
    # one family: the suite checks the script's steps; each family's own training is tested elsewhere
    env = {**os.environ, "PODIUM_ROOT": str(root), "PYTHON": sys.executable, "GPU_CHECK_FAMILIES": "cnn"}
    run = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    out = run.stdout
    assert not re.search(r"^(efficientnet|lstm|transformer) ", out, re.M), (
        "GPU_CHECK_FAMILIES=cnn measures the CNN alone"
    )
    native = cpu_bf16_flag() is not None
    assert ("bf16-mixed not measured" in out) is not native, out
    for family in ("cnn",):
        for precision in ("32-true", "bf16-mixed") if native else ("32-true",):
            assert re.search(rf"^{family} +\d+ +{precision} +[\d,]+ +[\d,]+ +[\d,]+ +\d\.\d{{3}}x", out, re.M), (
                family,
                precision,
                out,
            )
    assert re.search(r"^oof: 7,772 rows for 7,772 train ids; each id once: True; prepared order: True$", out, re.M), out
    assert re.search(r"^test: 1,944 rows for 1,944 test ids; each id once: True; prepared order: True$", out, re.M), out
    assert "== data: animals, prepared" in out  # the CNN alone needs no text competition
    assert "gpu_check: done in" in out
