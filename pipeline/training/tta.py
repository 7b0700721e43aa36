"""Test-time augmentation: predict each image batch under several fixed views and merge them.

A view is a deterministic transform of a whole batch: horizontal/vertical flip, a shift in
pixels, a zoom, or a combination. Views are applied by the module's prediction step, so the
out-of-fold predictions (what CV measures) and the test predictions (what is submitted) get the
same treatment. Validation during training, which picks the checkpoint, stays un-augmented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from pipeline.errors import PodiumError

VIEW_KEYS = ("hflip", "vflip", "shift", "scale")


@dataclass(frozen=True)
class View:
    hflip: bool = False
    vflip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)  # (right, down) in pixels
    scale: float = 1.0  # >1 zooms in

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The view of a float batch (N, C, H, W); borders uncovered by a shift or zoom are zero."""
        if self.hflip:
            x = x.flip(-1)
        if self.vflip:
            x = x.flip(-2)
        if self.shift != (0.0, 0.0) or self.scale != 1.0:
            height, width = x.shape[-2:]
            # affine_grid maps output to input in [-1, 1] coordinates: one pixel is 2/size.
            theta = torch.tensor(
                [[1 / self.scale, 0, -2 * self.shift[0] / width], [0, 1 / self.scale, -2 * self.shift[1] / height]],
                dtype=x.dtype,
                device=x.device,
            )
            grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return x


@dataclass(frozen=True)
class TTA:
    views: tuple[View, ...]  # the original image is always the first view
    merge: str

    def combine(self, preds: list[torch.Tensor], task: str) -> torch.Tensor:
        """Merge per-view predictions (each (N, outputs)); class probabilities are renormalised."""
        stacked = torch.stack(preds)
        if self.merge == "mean":
            merged = stacked.mean(0)
        elif self.merge == "geometric_mean":
            merged = stacked.clamp_min(1e-12).log().mean(0).exp()
        else:
            merged = stacked.max(0).values
        return merged if task == "regression" else merged / merged.sum(dim=1, keepdim=True)


def build_tta(cfg: DictConfig, modality: str, task: str) -> TTA | None:
    """The configured TTA, or None without views. Bad entries are refused naming `tta.views[i]`."""
    if not cfg.views:
        return None
    where = "Fix it in conf/tta/ or on the command line (tta=none turns TTA off)."
    if modality != "image":
        raise PodiumError(
            f"tta.views are image transforms, but this competition's modality is {modality}. Use tta=none."
        )
    if cfg.merge == "geometric_mean" and task == "regression":
        raise PodiumError(
            f"tta.merge=geometric_mean needs positive predictions; a regression task has none. Use mean. {where}"
        )
    views = [View()]
    for n, entry in enumerate(cfg.views):
        unknown = sorted(set(entry) - set(VIEW_KEYS))
        if unknown or not entry:
            raise PodiumError(
                f"tta.views[{n}] has unknown key(s) {unknown or '(empty view)'}; a view sets any of "
                f"{', '.join(VIEW_KEYS)}. {where}"
            )
        shift = tuple(float(v) for v in entry.get("shift", (0, 0)))
        scale = float(entry.get("scale", 1.0))
        if len(shift) != 2 or scale <= 0:
            raise PodiumError(
                f"tta.views[{n}]: shift must be [right, down] in pixels and scale > 0 (got {dict(entry)}). {where}"
            )
        views.append(View(bool(entry.get("hflip", False)), bool(entry.get("vflip", False)), shift, scale))
    return TTA(tuple(views), cfg.merge)
