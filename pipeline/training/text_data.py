"""Text inputs: tokenization cached on disk, ragged token datasets, dynamic padding, length buckets.

Prediction goes in order of length (`EvalBatches` over the rows sorted by length), again for
little padding.

Tokenization runs through Hugging Face `datasets` (`map(batched=True)` with a fast tokenizer) and
is written to `<paths.cache>/tokens/<fingerprint>.arrow`. The fingerprint hashes the tokenizer's
full serialisation, the texts and the max length, so a second training run, or another fold with
the same vocabulary, reads the tokens back instead of tokenizing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pipeline import progress
from pipeline.training.data import SeededShuffle

log = logging.getLogger(__name__)

TOKENIZATION_VERSION = "1"  # bump when the tokenize function below changes what it writes


def fingerprint(texts: list[str], tokenizer, max_length: int, truncation: str = "head") -> str:
    """What the tokens depend on: the tokenizer (vocabulary, normaliser, ...), the texts, max length, truncation."""
    # head, the first strategy, hashes as before it had a name: its cached tokens stay valid
    cut = "" if truncation == "head" else f"{truncation}|"
    digest = hashlib.sha256(f"{TOKENIZATION_VERSION}|{max_length}|{cut}".encode())
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    # Calling the tokenizer with truncation=True sets these on the backend object: the same
    # tokenizer would hash differently before and after its first use.
    state.pop("truncation", None)
    state.pop("padding", None)
    digest.update(json.dumps(state, sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


_said = False  # the first tokenization of this process has been logged


def kept_tokens(ids: list[int], special: list[int], max_length: int, truncation: str) -> list[int]:
    """A text's token ids cut to `max_length`, its special tokens ([CLS], [SEP]) kept where they stand.

    head keeps the first tokens of the text, tail the last, head_tail a quarter of the room from the
    head and the rest from the tail (Sun et al. 2019, "How to fine-tune BERT for text classification":
    the best of the three on long reviews).
    """
    if len(ids) <= max_length:
        return ids
    content = [i for i, s in enumerate(special) if not s]
    room = max(0, max_length - (len(ids) - len(content)))
    first = {"head": room, "tail": 0, "head_tail": room // 4}[truncation]
    keep = set(content[:first]) | set(content[len(content) - (room - first) :] if room > first else ())
    return [token for i, (token, s) in enumerate(zip(ids, special)) if s or i in keep]


def tokenize(
    texts: list[str], tokenizer, max_length: int, cache_dir: Path, truncation: str = "head"
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of every text, cut to `max_length` by `truncation` (head | tail | head_tail): (flat ids,
    offsets), ragged, cached on disk.

    Row i's tokens are `ids[offsets[i]:offsets[i + 1]]`.
    """
    from datasets import Dataset as HFDataset

    cache_file = Path(cache_dir) / "tokens" / f"{fingerprint(texts, tokenizer, max_length, truncation)}.arrow"
    hit = cache_file.is_file()
    started = time.perf_counter()
    cache_file.parent.mkdir(parents=True, exist_ok=True)

    with progress.bar("tokenizing", total=len(texts)) as tokenizing:

        def encode(batch):
            tokenizing.advance(len(batch["text"]))
            if truncation == "head":  # the tokenizer's own truncation
                return {"input_ids": tokenizer(batch["text"], truncation=True, max_length=max_length)["input_ids"]}
            whole = tokenizer(batch["text"], truncation=False, return_special_tokens_mask=True, verbose=False)
            return {
                "input_ids": [
                    kept_tokens(ids, special, max_length, truncation)
                    for ids, special in zip(whole["input_ids"], whole["special_tokens_mask"])
                ]
            }

        with _datasets_bars_off():  # its own bar would draw through ours
            tokens = HFDataset.from_dict({"text": texts}).map(
                encode,
                batched=True,
                batch_size=1000,
                remove_columns=["text"],
                cache_file_name=str(cache_file),
                load_from_cache_file=True,
            )
    column = tokens.data.column("input_ids").combine_chunks()
    ids = column.values.to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = column.offsets.to_numpy().astype(np.int64)
    global _said
    # Every fold of a model with its own vocabulary tokenizes anew (train and test texts): said once
    # per process, then at debug level (--debug shows each).
    log.log(
        logging.DEBUG if _said else logging.INFO,
        "%s %d texts in %.2f s (%s)%s",
        "read tokens of" if hit else "tokenized",
        len(texts),
        time.perf_counter() - started,
        cache_file,
        "" if _said else "; later tokenizations of this run are not repeated here",
    )
    _said = True
    return ids, offsets


@contextmanager
def _datasets_bars_off():
    import datasets

    was_on = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            datasets.enable_progress_bars()


class TokenDataset(Dataset):
    """(token ids, target) pairs from the ragged arrays of `tokenize`, for a subset of rows."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, targets: np.ndarray | None = None):
        self.ids, self.offsets = torch.from_numpy(ids), offsets
        self.rows = np.asarray(rows)
        self.targets = torch.from_numpy(np.asarray(targets)) if targets is not None else torch.zeros(len(self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        row = self.rows[index]
        return self.ids[self.offsets[row] : self.offsets[row + 1]], self.targets[index]

    @property
    def lengths(self) -> np.ndarray:
        return (self.offsets[self.rows + 1] - self.offsets[self.rows]).astype(np.int64)


class PadCollator:
    """Pads each batch to its own longest row (dynamic padding), not to the model's max length."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch):
        sequences, targets = zip(*batch)
        width = max(1, max(len(s) for s in sequences))
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for i, seq in enumerate(sequences):
            input_ids[i, : len(seq)] = seq
            attention_mask[i, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}, torch.stack(list(targets))


class LengthBucketSampler(Sampler[list[int]]):
    """Training batches of similar lengths, so little padding is computed, still in random order.

    Each epoch: shuffle (`self.sampler`, seeded by epoch), cut into chunks of
    `batch_size * bucket_batches` rows, sort each chunk by length, cut it into batches, shuffle
    the batches. Lightning sets the epoch on `self.sampler`, so runs (and resumed runs) repeat exactly.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, drop_last: bool, bucket_batches: int = 50):
        self.lengths, self.batch_size, self.seed, self.drop_last = lengths, batch_size, seed, drop_last
        self.chunk = batch_size * bucket_batches
        self.sampler = SeededShuffle(len(lengths), seed)

    def __iter__(self):
        order = np.fromiter(self.sampler, dtype=np.int64, count=len(self.lengths))
        batches = []
        for start in range(0, len(order), self.chunk):
            chunk = order[start : start + self.chunk]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        for k in np.random.default_rng([self.seed, self.sampler.epoch, 1]).permutation(len(batches)):
            yield batches[k].tolist()

    def __len__(self) -> int:
        n = len(self.lengths)
        if not self.drop_last:
            return sum(-(-min(self.chunk, n - s) // self.batch_size) for s in range(0, n, self.chunk))
        return sum(min(self.chunk, n - s) // self.batch_size for s in range(0, n, self.chunk))
