"""How fast Podium answers when there is nothing to do.

    .venv/bin/python benchmarks/startup.py          # after `make run`, from the project root

Prints the median wall time of `podium --help` and of a no-op `dvc repro` (every stage
up to date), each over several runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def median_seconds(command: list[str], runs: int) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    times, output = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        output = done.stdout + done.stderr
    return statistics.median(times), output


def main() -> None:
    help_s, _ = median_seconds([str(BIN / "podium"), "--help"], runs=7)
    print(f"podium --help           median {help_s:6.3f} s over 7 runs")
    repro_s, output = median_seconds([str(BIN / "dvc"), "repro"], runs=5)
    if "Running stage" in output:
        sys.exit("dvc repro ran a stage: run `make run` first so that the pipeline is up to date")
    print(f"dvc repro (no-op)       median {repro_s:6.3f} s over 5 runs")


if __name__ == "__main__":
    main()
