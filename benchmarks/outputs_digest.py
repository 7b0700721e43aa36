"""Digests of every built-in family's smoke-run predictions: proof that a refactor changed no output.

    .venv/bin/python benchmarks/outputs_digest.py > before.txt   # on the old commit
    .venv/bin/python benchmarks/outputs_digest.py > after.txt    # on the new one; then: diff before.txt after.txt

Each family (and each example of the user's own code) trains its demo competition on the smoke preset (600 rows, 2 folds, 1 epoch, CPU, no
tracking) in a scratch project built from the competitions' own build scripts, and prints the
SHA-256 of its out-of-fold and test prediction arrays (the numbers, not the parquet files' bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {  # model -> its demo competition
    "cnn": "animals",
    "efficientnet": "animals",
    "lstm": "rotten-tomatoes",
    "transformer_tiny": "rotten-tomatoes",
    "tfidf": "rotten-tomatoes",
    # the user's own code (competitions/<name>/models.py, scikit-learn by _target_)
    "rescnn": "animals",
    "textcnn": "rotten-tomatoes",
    "tfidf_svd_hgb": "rotten-tomatoes",
}


def digest(folder: Path) -> str:
    """SHA-256 of the id and prediction columns of oof.parquet and test.parquet."""
    sha = hashlib.sha256()
    for name in ("oof.parquet", "test.parquet"):
        frame = pd.read_parquet(folder / name)
        sha.update(",".join(frame.columns).encode())
        for column in frame.columns:
            values = frame[column].to_numpy()
            sha.update(
                values.astype(str).tobytes() if values.dtype == object else np.ascontiguousarray(values).tobytes()
            )
    return sha.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from pipeline.config import compose
    from pipeline.training.train import train

    with tempfile.TemporaryDirectory(prefix="podium-digest-") as scratch:
        project = Path(scratch)
        shutil.copytree(ROOT / "conf", project / "conf")
        for models in ROOT.glob("competitions/*/models.py"):  # the user's networks the examples name
            (project / models.parent.relative_to(ROOT)).mkdir(parents=True, exist_ok=True)
            shutil.copy(models, project / models.relative_to(ROOT))
        for competition in sorted(set(FAMILIES.values())):
            build = ROOT / "competitions" / competition / "build.py"
            out = str(project / "data" / competition)
            subprocess.run([sys.executable, str(build), "--out", out], check=True, stdout=subprocess.DEVNULL)
        for model in args.models:
            competition = FAMILIES[model]
            overrides = [
                f"competition={competition}",
                f"model={model}",
                "trainer=smoke",
                "tracking=none",
                "train.seeds=null",
                f"out_dir=outputs/{competition}/models/{model}",
            ]
            result = train(compose(overrides, root=project))
            print(f"{model:18s} {digest(result.out_dir)}  CV {result.cv_score:.6f}", flush=True)


if __name__ == "__main__":
    main()
