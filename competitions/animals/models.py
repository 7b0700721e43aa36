"""Your own networks for this competition: an example of `family: network` (conf/model/rescnn.yaml).

Any torch.nn.Module works. Podium passes what it knows by parameter name (`channels`, `height`,
`width`, `n_outputs`) and every other key of the YAML's `net:`; the forward takes images scaled to
[0, 1], shaped (N, C, H, W), and returns N x n_outputs logits.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ResidualCNN(nn.Module):
    """A stem, `blocks` residual blocks with 2x2 pooling between them, global average pooling, a linear head."""

    def __init__(self, channels: int, n_outputs: int, width: int = 32, blocks: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(blocks):
            layers += [ResidualBlock(width), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images * 2 - 1).mean(dim=(2, 3)))
