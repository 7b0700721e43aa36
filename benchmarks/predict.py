"""`podium predict` speed and memory: rows/s per member, and peak memory as the number of rows grows.

    .venv/bin/python benchmarks/predict.py [--scales 1 5] [--competitions animals rotten-tomatoes]

In a scratch project built from the competitions' own build scripts, each demo model trains on
the smoke preset (600 rows, 2 folds, 1 epoch: the architectures are the demos', so the prediction
cost is theirs) and a mean ensemble blends them. Each competition's test set is then predicted at
each scale (the rows repeated with new ids, shuffled) in a fresh process, which reports its peak
resident memory: with inputs streamed in chunks, it should barely grow with the rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"animals": ["cnn", "efficientnet"], "rotten-tomatoes": ["tfidf", "lstm", "transformer"]}


def scaled_test(project: Path, competition: str, scale: int, folder: Path) -> tuple[Path, Path | None]:
    """The competition's test.csv with its rows `scale` times, new ids, shuffled (images hard-linked)."""
    raw = project / "data" / competition / "raw"
    test = pd.read_csv(raw / "test.csv", dtype=str)
    copies = [test.assign(id=test["id"].map(lambda i, k=k: f"x{k}-{i}")) for k in range(scale)]
    big = pd.concat(copies).sample(frac=1.0, random_state=0)
    folder.mkdir(parents=True)
    images = None
    if (raw / "images").is_dir():
        images = folder / "images"
        images.mkdir()
        for frame in copies:
            for new, old in zip(frame["id"], test["id"]):
                os.link(raw / "images" / f"{old}.png", images / f"{new}.png")
    big.to_csv(folder / "test.csv", index=False)
    return folder / "test.csv", images


def child(project: Path, competition: str, test: Path, images: str) -> None:
    """One prediction, in this process: its figures and peak memory as one JSON line."""
    from pipeline.inference.predict import predict_file

    result = predict_file(
        project / "outputs" / competition / "ensemble",
        project,
        test,
        Path(images) if images else None,
        test.with_name("submission.csv"),
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": result.rows, "seconds": result.seconds, "load": result.load_seconds,
                      "members": result.members, "peak_mb": peak_mb}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--competitions", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1], Path(args.child[2]), args.child[3])
    logging.basicConfig(level=logging.WARNING)
    from pipeline.config import compose
    from pipeline.ensemble.stage import ensemble
    from pipeline.training.train import train

    with tempfile.TemporaryDirectory(prefix="podium-predict-") as scratch:
        project = Path(scratch)
        shutil.copytree(ROOT / "conf", project / "conf")
        rows = []
        for competition in args.competitions:
            build = ROOT / "competitions" / competition / "build.py"
            out = str(project / "data" / competition)
            subprocess.run([sys.executable, str(build), "--out", out], check=True, stdout=subprocess.DEVNULL)
            base = [f"competition={competition}", "trainer=smoke", "tracking=none", "train.seeds=null"]
            for model in MODELS[competition]:
                train(compose([*base, f"model={model}", f"out_dir=outputs/{competition}/models/{model}"], root=project))
            members = f"ensemble.members=[{','.join(MODELS[competition])}]"
            ensemble(
                compose(
                    [*base, members, "ensemble.method=mean", f"out_dir=outputs/{competition}/ensemble"], root=project
                )
            )
            for scale in args.scales:
                test, images = scaled_test(project, competition, scale, project / "scaled" / f"{competition}-{scale}")
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(project), competition, str(test), str(images or "")],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                for member in figures["members"]:
                    rows.append([competition, figures["rows"], member["member"], member["rows_per_s"], "", ""])
                rows.append([competition, figures["rows"], "all, blended",
                             round(figures["rows"] / figures["seconds"]), f"{figures['load']:.1f}",
                             round(figures["peak_mb"])])  # fmt: skip
        from pipeline.report import table

        print(table(["competition", "rows", "member", "rows/s", "load s", "peak MB"], rows))
        peaks = {}
        for row in rows:
            if row[2] == "all, blended":
                peaks.setdefault(row[0], []).append((row[1], row[5]))
        for competition, pairs in peaks.items():
            (small, low), (large, high) = pairs[0], pairs[-1]
            print(f"{competition}: peak memory x{high / low:.2f} for x{large / small:.0f} the rows")


if __name__ == "__main__":
    main()
