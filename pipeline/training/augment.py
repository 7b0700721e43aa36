"""Batch augmentation from config: a list of `_target_` entries, e.g. kornia.augmentation classes."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from torch import nn

from pipeline.errors import PodiumError


def build_augment(cfg: DictConfig) -> nn.Module | None:
    """An nn.Sequential of the configured transforms, or None when the list is empty."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    transforms = []
    for n, entry in enumerate(cfg.transforms):
        try:
            transforms.append(instantiate(OmegaConf.to_container(entry)))
        except InstantiationException as exc:
            raise PodiumError(
                f"Cannot build augmentation augment.transforms[{n}] ({entry.get('_target_')}): "
                f"{' '.join(str(exc).split())[:400]}. Fix the entry in conf/augment/."
            ) from None
    return nn.Sequential(*transforms) if transforms else None
