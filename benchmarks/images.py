"""Images at photo scale: decode speed per worker, and each data path's memory and images/s as the data grow.

    .venv/bin/python benchmarks/images.py                      # needs data/animals (competitions/animals/build.py)
    .venv/bin/python benchmarks/images.py --sizes 500 --decode-only   # the decoders alone, in seconds

1. Decoding a 500x375 RGB JPEG (quality 90) in one process: Pillow whole, Pillow's draft mode at 224
   (libjpeg's DCT scaling, what Podium uses), OpenCV (`cv2.imdecode`, the decoder albumentations
   brings) whole and at half scale. Run it under another interpreter to compare a Pillow build (e.g.
   pillow-simd), with `--decode-only`.
2. For N generated photos (competitions/animal-photos/build.py, 300-900 px) at 224x224x3: `podium
   prepare` with competition.image.store=cache and =stream, then one epoch of fold 0's training loader
   (2 workers, per-image augmentation of conf/augment/photo.yaml) in one process and in two processes
   each taking its DDP shard (as `trainer=ddp` does on CPU). Peak RSS is the kernel's (wait4), over the
   loading process and its workers; PSS (proportional: shared pages split among the processes sharing
   them) is summed over every process (the loading processes and their workers) at the end of the
   epoch, so processes sharing one memory map count it once.
3. The model's side: EfficientNet-Lite0 at 224 px, training steps of 32 images, images/s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def decode_speeds(count: int = 100) -> list[list[str]]:
    """Images/s of each decoder on `count` 500x375 JPEGs, in this process."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for _ in range(count):
        base = rng.integers(0, 256, (375 // 25, 500 // 25, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((500, 375), Image.BICUBIC)  # smooth, photo-like content
        out = io.BytesIO()
        img.save(out, "JPEG", quality=90)
        files.append(out.getvalue())

    def pillow(data: bytes, draft: bool) -> None:
        with Image.open(io.BytesIO(data)) as img:
            if draft:
                img.draft(None, (224, 224))
            img.load()

    decoders = {
        "Pillow, whole": lambda d: pillow(d, False),
        "Pillow, draft at 224 (Podium)": lambda d: pillow(d, True),
    }
    try:
        import cv2

        decoders["OpenCV, whole"] = lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR)
        decoders["OpenCV, half scale"] = lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
    except ImportError:
        pass
    rows = []
    for name, decode in decoders.items():
        decode(files[0])
        started = time.perf_counter()
        for data in files:
            decode(data)
        rows.append([name, f"{count / (time.perf_counter() - started):,.0f}"])
    return rows


LOADER = r"""
import json, os, sys, time
import numpy as np
from pathlib import Path
from pipeline.config import compose
from pipeline.data.prepared import read_prepared
from pipeline.training.distributed import World
from pipeline.training.inputs import fold_inputs
from pipeline.training.spec import FoldSpec
from pipeline import io
root, store, rank, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = compose(["competition=animal-photos", f"competition.image.store={store}", "data.num_workers=2",
               "tracking=none"], root=root)
data = read_prepared(io.prepared_dir(cfg))
spec = FoldSpec.of(cfg)
inputs = fold_inputs(spec, data, data.train["fold"].to_numpy() == 0)
loader = inputs.train_loader(spec, 0, World(rank=rank, size=size))
started, seen = time.perf_counter(), 0
for images, _ in loader:
    seen += len(images)
seconds = time.perf_counter() - started
def tree(pid):
    # this process and its DataLoader workers (alive: persistent workers outlive the epoch)
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        kids += [int(k) for k in open(f"/proc/{pid}/task/{task}/children").read().split()]
    return [pid] + [p for k in kids for p in tree(k)]
pss = 0
for pid in tree(os.getpid()):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            pss += int(line.split()[1])
print(json.dumps({"images": seen, "seconds": seconds, "pss_mib": pss / 1024}))
"""


def loader_run(root: Path, store: str, processes: int) -> dict:
    """One epoch of fold 0's training loader in `processes` processes (each its shard): images/s, peak RSS, PSS."""
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [sys.executable, "-c", LOADER, str(root), store, str(rank), str(processes)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PODIUM_ROOT": str(root)},
        )
        for rank in range(processes)
    ]
    peaks, reports = [], []
    for process in running:
        _, status, usage = os.wait4(process.pid, 0)
        out, err = process.stdout.read(), process.stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"the {store} loader failed:\n{err[-3000:]}")
        peaks.append(usage.ru_maxrss / 1024)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    seconds = time.perf_counter() - started
    images = sum(r["images"] for r in reports)
    return {
        "images_per_s": images / max(r["seconds"] for r in reports),
        "peak_rss": max(peaks),
        "pss": sum(r["pss_mib"] for r in reports),
        "seconds": seconds,
    }


def podium(root: Path, *args: str) -> float:
    started = time.perf_counter()
    run = subprocess.run(
        [str(BIN / "podium"), *args, "tracking=none"],
        env={**os.environ, "PODIUM_ROOT": str(root)},
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"podium {' '.join(args)} failed:\n{run.stderr[-3000:]}")
    return time.perf_counter() - started


def path_rows(n: int, scratch: Path) -> list[list[str]]:
    """Prepare and load N photos by both paths."""
    import shutil

    root = scratch / f"n{n}"
    shutil.rmtree(root / "conf", ignore_errors=True)
    shutil.copytree(ROOT / "conf", root / "conf")
    shutil.copy(ROOT / "competitions/animal-photos/animal-photos.yaml", root / "conf/competition")
    shutil.rmtree(root / "cache", ignore_errors=True)  # the disk cache: filled afresh by the timed prepare
    if not (root / "data/animal-photos/raw/train.csv").is_file():
        build = [
            sys.executable,
            str(ROOT / "competitions/animal-photos/build.py"),
            "--source",
            str(ROOT / "data/animals"),
        ]
        subprocess.run(
            [*build, "--out", str(root / "data/animal-photos"), "--rows", str(n)], check=True, capture_output=True
        )
    rows = []
    for store in ("cache", "stream"):
        prepare = podium(root, "prepare", "competition=animal-photos", f"competition.image.store={store}")
        for processes in (1, 2):
            got = loader_run(root, store, processes)
            rows.append(
                [
                    f"{n:,}",
                    store,
                    f"{processes}",
                    f"{prepare:.0f}",
                    f"{got['images_per_s']:,.0f}",
                    f"{got['peak_rss']:,.0f}",
                    f"{got['pss']:,.0f}",
                ]
            )
            print("  " + " | ".join(rows[-1]), flush=True)
    return rows


def model_speed(steps: int = 3) -> str:
    """EfficientNet-Lite0 training steps at 224 px, 32 images each: images/s."""
    import torch
    from omegaconf import OmegaConf

    from pipeline.models.efficientnet import build_image

    cfg = OmegaConf.load(ROOT / "conf/model/efficientnet.yaml")
    cfg.input_size = 224
    net = build_image(cfg, 3, 224, 224, 10)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    batch, target = torch.rand(32, 3, 224, 224), torch.randint(0, 10, (32,))
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(batch), target).backward()
        optimizer.step()
    return f"{32 * steps / (time.perf_counter() - started):,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="photos per data set")
    parser.add_argument("--decode-only", action="store_true", help="only the decoders (any interpreter with Pillow)")
    parser.add_argument("--keep", type=Path, default=None, help="build the photo sets here and reuse them next time")
    args = parser.parse_args()
    import PIL

    print(f"decoding 500x375 JPEGs, one process (Pillow {PIL.__version__}):")
    for name, speed in decode_speeds():
        print(f"  {name:32s} {speed:>8s} images/s")
    if args.decode_only:
        return
    from pipeline.report import table

    rows = []
    with tempfile.TemporaryDirectory(prefix="podium-images-") as scratch:
        for n in args.sizes:
            rows += path_rows(n, args.keep or Path(scratch))
    print(
        table(
            ["photos", "path", "processes", "prepare s", "loader images/s", "peak RSS MiB", "PSS MiB (sum)"],
            rows,
        )
    )
    print(f"EfficientNet-Lite0 at 224 px, training: {model_speed()} images/s (batches of 32)")


if __name__ == "__main__":
    main()
