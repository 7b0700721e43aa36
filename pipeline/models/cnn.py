"""A configurable plain CNN: conv-BN-ReLU blocks with max-pooling, then a dense head."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from pipeline.config.sizes import cnn_min_image_size  # one definition: the config check refuses the same depths


def conv_block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CNN(nn.Module):
    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        n_outputs: int,
        *,
        width_0: int = 32,
        depth: int = 3,
        convs_per_block: int = 2,
        hidden: int = 128,
        dropout: float = 0.2,
    ):
        super().__init__()
        if min(height, width) < cnn_min_image_size(depth):
            raise ValueError(f"depth {depth} halves a {height}x{width} image below 1 pixel; lower model.depth")
        widths = [width_0 * 2**i for i in range(depth)]
        self.features = nn.Sequential(
            *(conv_block(c_in, c_out, convs_per_block) for c_in, c_out in zip([channels, *widths], widths))
        )
        # The flattened size follows from the input size: measure it instead of hard-coding it.
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, channels, height, width)).numel()
        head: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
        if hidden:
            head += [
                nn.Linear(n_flat, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_outputs),
            ]
        else:
            head.append(nn.Linear(n_flat, n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2 - 1))


def build_image(cfg: DictConfig, channels: int, height: int, width: int, n_outputs: int, root=None) -> nn.Module:
    return CNN(
        channels,
        height,
        width,
        n_outputs,
        width_0=cfg.width,
        depth=cfg.depth,
        convs_per_block=cfg.convs_per_block,
        hidden=cfg.hidden,
        dropout=cfg.dropout,
    )
