"""Model families, each in its own module, imported on use.

Image families (`modality: image`) provide `build(cfg, channels, height, width, n_outputs)`: a
network mapping images scaled to [0, 1], shaped (N, C, H, W), to N x n_outputs logits.
Text families (`modality: text`) provide `make_tokenizer(cfg, texts, root)` (a fast tokenizer,
fitted on `texts` where the family learns its vocabulary) and `build(cfg, tokenizer, n_outputs,
root)`: a network mapping (input_ids, attention_mask) to N x n_outputs logits.
Families that are not networks (`tfidf`) provide `fit_predict(...)` instead and skip Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType


@dataclass(frozen=True)
class Family:
    module: str  # the module holding the builders
    modality: str  # the inputs it reads: image | text


FAMILIES = {
    "cnn": Family("pipeline.models.cnn", "image"),
    "efficientnet": Family("pipeline.models.efficientnet", "image"),
    "lstm": Family("pipeline.models.lstm", "text"),
    "transformer": Family("pipeline.models.transformer", "text"),
    "tfidf": Family("pipeline.models.tfidf", "text"),
}


def family_module(name: str) -> ModuleType:
    """The builders of family `name` (validated by the config schema before this is called)."""
    return import_module(FAMILIES[name].module)
