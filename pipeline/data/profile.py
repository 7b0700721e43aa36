"""The data profile `prepare` writes (`prepared/profile.json`) and prints: what the data holds, before any model.

Rows, class counts and the imbalance ratio; for text the length of the texts in words and in each
text model's tokens (median, 90th, 95th and 99th percentile, the share a `max_length` truncates);
for images the sizes and modes of the files; and train beside test for each, since a test set
unlike the training set (texts twice as long, another image size) is what a first run misses.

The defaults chosen from the data (pipeline/training/data_choices.py) read the same summaries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def length_summary(lengths: Sequence[int] | np.ndarray, max_length: int | None = None) -> dict:
    """Median, 90th/95th/99th percentile and maximum of `lengths`; with `max_length`, the share of rows longer."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return {"rows": 0}
    summary = {"rows": len(lengths), "mean": round(float(lengths.mean()), 1)}
    summary.update({f"p{q}": round(float(np.percentile(lengths, q)), 1) for q in PERCENTILES})
    summary["max"] = int(lengths.max())
    if max_length is not None:
        summary["max_length"] = int(max_length)
        summary["truncated"] = round(float((lengths > max_length).mean()), 4)
    return summary


def word_counts(texts: Iterable[str]) -> np.ndarray:
    """Words per text: runs of characters between whitespace."""
    return np.fromiter((len(str(t).split()) for t in texts), dtype=np.int64)


def imbalance_ratio(counts: Iterable[int]) -> float | None:
    """The most frequent class's rows over the least frequent present class's (None: no rows)."""
    present = [int(n) for n in counts if n > 0]
    return max(present) / min(present) if present else None


def class_summary(counts: Mapping[str, int]) -> dict:
    """Rows per class and the imbalance ratio (`imbalance_ratio`, to 2 places)."""
    ratio = imbalance_ratio(counts.values())
    return {"class_counts": dict(counts), "imbalance_ratio": round(ratio, 2) if ratio is not None else None}


def image_summary(seen: Iterable[tuple[int, int, str]]) -> dict:
    """Sizes (width x height) and Pillow modes of the decoded files: the five commonest of each, and the ranges."""
    seen = list(seen)
    if not seen:
        return {"files": 0}
    widths, heights = np.array([s[0] for s in seen]), np.array([s[1] for s in seen])
    sizes = Counter(f"{w}x{h}" for w, h, _ in seen)
    return {
        "files": len(seen),
        "sizes": dict(sizes.most_common(5)),
        "distinct_sizes": len(sizes),
        "width": [int(widths.min()), int(widths.max())],
        "height": [int(heights.min()), int(heights.max())],
        "modes": dict(Counter(m for _, _, m in seen).most_common()),
    }


def ratio(test: dict, train: dict, key: str = "p50") -> float | None:
    """test's `key` over train's (how much longer the test texts are), None where train's is 0 or absent."""
    if not train.get(key) or key not in test:
        return None
    return round(test[key] / train[key], 2)


def profile_text(profile: Mapping) -> str:
    """The profile as a few lines of aligned tables, for the terminal."""
    lines = [f"data profile of {profile['competition']}: {profile['rows']['train']} training rows, "]
    lines[0] += f"{profile['rows']['test']} test rows"
    classes = profile.get("classes")
    if classes:
        counts = ", ".join(f"{k} {v}" for k, v in classes["class_counts"].items())
        lines.append(f"  classes: {counts}; imbalance ratio {classes['imbalance_ratio']}")
    if "target" in profile:
        t = profile["target"]
        lines.append(f"  target: mean {t['mean']:.4g}, std {t['std']:.4g}, from {t['min']:.4g} to {t['max']:.4g}")
    text = profile.get("text")
    if text:
        header = f"  {'length of the texts':<28}{'median':>8}{'p90':>8}{'p95':>8}{'p99':>8}{'max':>8}  truncated"
        lines.append(header)
        rows = [("words", text["words"])] + [(f"{m} tokens", t) for m, t in text.get("tokens", {}).items()]
        for what, by_split in rows:
            for split in ("train", "test"):
                s = by_split[split]
                if not s.get("rows"):
                    continue
                auto = " (auto)" if s.get("max_length_auto") else ""
                cut = f"  {s['truncated']:.1%} at max_length {s['max_length']}{auto}" if "truncated" in s else ""
                lines.append(
                    f"  {what + ' (' + split + ')':<28}{s['p50']:>8g}{s['p90']:>8g}{s['p95']:>8g}{s['p99']:>8g}"
                    f"{s['max']:>8d}{cut}"
                )
        if text.get("test_over_train") is not None:
            lines.append(f"  test texts are {text['test_over_train']}x the training texts' median length in words")
    images = profile.get("images")
    if images:
        for split in ("train", "test"):
            s = images[split]
            if s.get("files"):
                lines.append(
                    f"  images ({split}): {s['files']} files, {s['distinct_sizes']} size(s) "
                    f"(width {s['width'][0]}-{s['width'][1]}, height {s['height'][0]}-{s['height'][1]}; "
                    f"commonest {', '.join(s['sizes'])}), modes {', '.join(f'{m} {n}' for m, n in s['modes'].items())}"
                )
    return "\n".join(lines)
