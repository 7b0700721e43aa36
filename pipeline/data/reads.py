"""What `prepare` reads from conf/config.yaml's `data:`: one definition for its key and its DVC params.

`prepare_key` (pipeline/prepare.py) hashes these keys, so a by-hand run with another value prepares
afresh; the rendered prepare stage (pipeline/dvc_files.py) lists them as params, so `dvc repro`
reruns it exactly when one of them changes. The other `data:` keys (workers, threads, pinned
memory) say how training loads the prepared data, not what it holds.
"""

from __future__ import annotations

# key -> what it changes in the prepared data (the rendered stage's comment)
DATA_KEYS = {"limit_train_rows": "train on a sample of this many rows"}
IMAGE_DATA_KEYS = {
    "image_memory_gb": "the budget by which store: auto picks `cache` or `stream`",
    "image_cache_side": "streamed images: the side their disk cache shrinks them to",
}


def data_keys(modality: str) -> dict[str, str]:
    """The keys of `data:` that shape a competition's prepared data, with what each changes."""
    return {**DATA_KEYS, **(IMAGE_DATA_KEYS if modality == "image" else {})}
