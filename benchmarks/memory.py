"""Peak resident memory of each model family's training (`podium train`, one process).

    .venv/bin/python benchmarks/memory.py           # after `make run`, from the project root

Each family trains its demo competition's full data, every fold, one seed, for one epoch
capped at 40 batches (memory peaks in the first fold: data, network, optimizer state,
activations, predictions), tracking into a scratch MLflow store. Peak RSS is the kernel's
count for the `podium train` process (wait4's ru_maxrss).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FAMILIES = {
    "cnn": "animals",
    "efficientnet": "animals",
    "lstm": "rotten-tomatoes",
    "transformer": "rotten-tomatoes",
    "tfidf": "rotten-tomatoes",
}


def peak_rss(model: str, competition: str, scratch: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one `podium train`."""
    command = [
        str(BIN / "podium"),
        "train",
        f"competition={competition}",
        f"model={model}",
        "train.seeds=null",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=40",
        "trainer.enable_progress_bar=false",
        f"out_dir={scratch / model}",
        f"paths.checkpoints={scratch / 'checkpoints'}",
        f"tracking.uri=sqlite:///{scratch / 'mlflow.db'}",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"podium train model={model} failed:\n{process.stderr.read()[-3000:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux reports KiB


def main() -> None:
    from pipeline.report import table

    rows = []
    with tempfile.TemporaryDirectory(prefix="podium-memory-") as scratch:
        for model, competition in FAMILIES.items():
            mib, seconds = peak_rss(model, competition, Path(scratch))
            rows.append([model, competition, f"{mib:,.0f}", f"{seconds:.0f}"])
            print(f"  {model}: {mib:,.0f} MiB", flush=True)
    print(table(["model", "competition", "peak RSS MiB", "wall s"], rows))


if __name__ == "__main__":
    main()
