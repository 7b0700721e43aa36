"""bf16 autocast against 32-bit on this CPU, and what `trainer.precision: auto` picks here.

    .venv/bin/python benchmarks/precision.py [--repeats 5]

A forward and backward pass of two blocks the demo families are made of: the CNN's convolutions
(128 images of 28x28, 4 conv layers of 32-64 channels) and a Transformer-sized dense block (2,048
tokens, 384 -> 1,536 -> 384, GELU). Median milliseconds over the repeats, after one warm-up pass.
Where the CPU lacks native bf16 (AVX512-BF16, AMX), bf16 runs emulated and is several times slower.
"""

from __future__ import annotations

import argparse
import statistics
import time


def blocks():
    import torch
    from torch import nn

    cnn = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1),
    )  # fmt: skip
    dense = nn.Sequential(nn.Linear(384, 1536), nn.GELU(), nn.Linear(1536, 384))
    return {
        "CNN convolutions (128 x 1 x 28 x 28)": (cnn, torch.rand(128, 1, 28, 28)),
        "Transformer dense block (2,048 x 384)": (dense, torch.rand(2048, 384)),
    }


def milliseconds(net, batch, bf16: bool, repeats: int) -> float:
    import torch

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            net(batch).float().sum().backward()

    step()  # warm-up: oneDNN picks and caches its kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    from pipeline.config import precision

    flag = precision.cpu_bf16_flag()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"native bf16 flag: {flag or 'none'} -> trainer.precision auto picks {precision.resolve('auto', 'cpu')}\n")
    print(f"{'block':40} {'32-true ms':>11} {'bf16 ms':>9} {'bf16/32':>8}")
    for name, (net, batch) in blocks().items():
        fp32 = milliseconds(net, batch, False, args.repeats)
        bf16 = milliseconds(net, batch, True, args.repeats)
        print(f"{name:40} {fp32:11,.0f} {bf16:9,.0f} {bf16 / fp32:7.1f}x")


if __name__ == "__main__":
    main()
