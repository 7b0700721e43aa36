"""Model families. Each builder maps images scaled to [0, 1], shaped (N, C, H, W), to N x outputs logits."""

from __future__ import annotations

from importlib import import_module

from omegaconf import DictConfig
from torch import nn

# family name -> module holding `build(cfg, channels, height, width, n_outputs)`, imported on use
FAMILIES = {
    "cnn": "pipeline.models.cnn",
    "efficientnet": "pipeline.models.efficientnet",
}


def build_model(cfg: DictConfig, channels: int, height: int, width: int, n_outputs: int) -> nn.Module:
    """Build the network of `cfg.family` for inputs of the given shape."""
    return import_module(FAMILIES[cfg.family]).build(cfg, channels, height, width, n_outputs)
