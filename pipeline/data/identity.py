"""Content identities of data, for the cache keys that decide whether earlier work can be reused.

Two identities:
- `files_digest`: the raw files a preparation reads (tables and every image), by content. Each
  file's hash is remembered beside its size and modification time in a small cache file, so an
  unchanged folder costs a `stat` per file, and a file whose size or time changed is read again.
- `prepared_digest`: the prepared data itself (rows, targets, folds, texts, decoded pixels):
  what a fold's saved results were computed from. A resumed training compares it with the one
  recorded beside the fold's checkpoints, so a relabelled row or a moved fold never reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def files_digest(paths: Iterable[Path], cache_file: Path | None = None) -> str:
    """One hash of the files' names and contents, in the order given (a missing file counts as absent).

    `cache_file` (JSON: path -> [size, mtime_ns, sha256]) spares re-reading files whose size and
    modification time are unchanged; it is rewritten (atomically) only when something changed.
    """
    known = _read_cache(cache_file)
    seen: dict[str, list] = {}
    digest = hashlib.sha256()
    for path in paths:
        key = str(path)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            digest.update(f"{path.name}\0absent\0".encode())
            continue
        entry = known.get(key)
        if entry is None or entry[:2] != [stat.st_size, stat.st_mtime_ns]:
            entry = [stat.st_size, stat.st_mtime_ns, file_sha256(path)]
        seen[key] = entry
        digest.update(f"{path.name}\0{entry[2]}\0".encode())
    if cache_file is not None and seen != {k: known[k] for k in seen if k in known}:
        io.write_json(cache_file, {**known, **seen})
    return digest.hexdigest()[:16]


def _read_cache(cache_file: Path | None) -> dict[str, list]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        return json.loads(cache_file.read_text())
    except ValueError:  # a damaged cache only costs a re-read of the files
        return {}


def prepared_digest(
    train: pd.DataFrame,
    test: pd.DataFrame,
    images: dict[str, np.ndarray],
    train_features: pd.DataFrame | None = None,
    test_features: pd.DataFrame | None = None,
    files: str | None = None,
) -> str:
    """One hash of the prepared tables (column names, order and values), decoded image arrays and feature tables,
    and `files`: what streamed images are (their content's digest and how they are read), None for the rest."""
    digest = hashlib.sha256()
    tables = [("train", train), ("test", test)]
    if train_features is not None and test_features is not None:  # absent: the digest of image and text data as before
        tables += [("train_features", train_features), ("test_features", test_features)]
    for name, frame in tables:
        digest.update(f"{name}\0{list(frame.columns)}\0{len(frame)}\0".encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    for split in sorted(images):
        array = np.ascontiguousarray(images[split])
        digest.update(f"{split}\0{array.shape}\0{array.dtype}\0".encode())
        digest.update(memoryview(array).cast("B"))
    if files is not None:
        digest.update(f"files\0{files}".encode())
    return digest.hexdigest()[:16]
