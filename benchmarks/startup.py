"""How fast Podium answers: its help, the first optimizer step of a training, a no-op pipeline.

    .venv/bin/python benchmarks/startup.py          # after `make run`, from the project root

Prints the median wall time of `podium --help`, of `podium train` (the animals CNN, default
config) from launch to its first optimizer step, and of a no-op `dvc repro` (every stage up
to date), each over several runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

# `podium train` as its console script runs it (pipeline.cli.main), plus a global hook that
# prints the time of the first optimizer step and ends the process there.
UNTIL_FIRST_STEP = """
import os, sys, time
from torch.optim.optimizer import register_optimizer_step_post_hook

def first_step(optimizer, args, kwargs):
    print(f"first optimizer step at {time.time():.6f}", flush=True)
    os._exit(0)

register_optimizer_step_post_hook(first_step)
from pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def median_seconds(command: list[str], runs: int) -> tuple[float, str]:
    times, output = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        output = done.stdout + done.stderr
    return statistics.median(times), output


def seconds_to_first_step(scratch: Path) -> float:
    """Launch to the first optimizer step of `podium train` (the CNN), tracking into a scratch store."""
    command = [
        sys.executable,
        "-c",
        UNTIL_FIRST_STEP,
        "train",
        "competition=animals",
        "model=cnn",
        "train.seeds=null",
        "train.resume=false",
        f"out_dir={scratch / 'run'}",
        f"paths.checkpoints={scratch / 'checkpoints'}",
        f"tracking.uri=sqlite:///{scratch / 'mlflow.db'}",
    ]
    launched = time.time()
    done = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True)
    marks = [line for line in done.stdout.splitlines() if line.startswith("first optimizer step at ")]
    if not marks:
        sys.exit(f"podium train stopped before its first optimizer step:\n{done.stderr[-3000:]}")
    if "no prepared data matching" in done.stderr:
        sys.exit("podium train prepared the data first: run `make run` (or `podium prepare`) so that it is prepared")
    return float(marks[0].rsplit(" ", 1)[1]) - launched


def main() -> None:
    help_s, _ = median_seconds([str(BIN / "podium"), "--help"], runs=7)
    print(f"podium --help                      median {help_s:6.3f} s over 7 runs")
    with tempfile.TemporaryDirectory(prefix="podium-startup-") as scratch:
        seconds_to_first_step(Path(scratch))  # creates the scratch MLflow store (a one-off cost)
        first = statistics.median(seconds_to_first_step(Path(scratch)) for _ in range(3))
    print(f"podium train -> first optimizer step median {first:6.3f} s over 3 runs (animals CNN)")
    repro_s, output = median_seconds([str(BIN / "dvc"), "repro"], runs=5)
    if "Running stage" in output:
        sys.exit("dvc repro ran a stage: run `make run` first so that the pipeline is up to date")
    print(f"dvc repro (no-op)                  median {repro_s:6.3f} s over 5 runs")


if __name__ == "__main__":
    main()
