"""Image datasets of both data paths (pipeline/data/image_store.py), and the per-image training augmentation.

Both return (uint8 image tensor (C, H, W), target), so batches, the module's scaling, kornia's batch
augmentation and TTA are the same whichever path the images come by:
- `ImageArrayDataset`: rows of the decoded array of `cache`, read from its memory map per item
  (never the whole array: the DDP processes of a machine share the map's pages);
- `ImageFileDataset`: files of `stream`, decoded per item in the DataLoader's workers.

Training may add per-image augmentation (`augment.items`: albumentations transforms, e.g. a random
resized crop, flips, colour jitter) on either path; evaluation and prediction fit each image to
competition.image's size by `competition.image.fit`, the pixels `cache` decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from pipeline.data.image_store import ImageReader
from pipeline.errors import PodiumError

Items = Callable[[np.ndarray], np.ndarray]  # uint8 (H, W, C) in, uint8 (H', W', C) out


def _targets(targets: np.ndarray | None, n: int) -> torch.Tensor:
    return torch.from_numpy(np.asarray(targets)) if targets is not None else torch.zeros(n)


def _chw(pixels: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8 as a (C, H, W) tensor of its own memory."""
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


class ImageArrayDataset(Dataset):
    """Rows `rows` of a decoded uint8 array (N, C, H, W) (all rows when None); targets 0 for unlabelled rows."""

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        items: Items | None = None,
    ):
        self.images, self.items = images, items
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows)
        self.targets = _targets(targets, len(self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        # A process started by spawn receives the dataset pickled: a memory map goes as its file's name,
        # reopened there, not as a copy of the whole array (NumPy pickles a memmap's data).
        state = dict(self.__dict__)
        if isinstance(self.images, np.memmap) and self.images.filename is not None:
            state["images"] = Path(self.images.filename)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["images"], Path):
            state["images"] = np.load(state["images"], mmap_mode="r")
        self.__dict__.update(state)

    def __getitem__(self, index: int):
        pixels = np.array(self.images[self.rows[index]])  # this row only, off the (read-only) map
        if self.items is not None:
            return _chw(self.items(pixels.transpose(1, 2, 0))), self.targets[index]
        return torch.from_numpy(pixels), self.targets[index]


class ImageFileDataset(Dataset):
    """Image files decoded per item by `reader`: augmented by `items` (training) or fitted to the network's size.

    Only augmented items read the disk cache (a photo shrunk once, then cropped at random). Fitted items, what
    evaluation, prediction and un-augmented training see, are decoded from the files themselves: the same pixels
    as `cache`'s array and `podium predict`'s, whatever the cache's side.
    """

    def __init__(
        self,
        paths: list[Path],
        reader: ImageReader,
        targets: np.ndarray | None = None,
        items: Items | None = None,
    ):
        self.paths, self.reader, self.items = paths, reader, items
        self.targets = _targets(targets, len(paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        if self.items is not None:
            return _chw(self.items(np.asarray(self.reader.read(path)))), self.targets[index]
        fitted = self.reader.fitted(self.reader.direct(path), path)
        return torch.from_numpy(np.array(fitted)), self.targets[index]


class AlbumentationsItems:
    """`augment.items` as one albumentations Compose, called on a uint8 (H, W, C) array."""

    def __init__(self, entries: list, image: DictConfig):
        self.compose = _compose(entries)
        self.channels = int(image.channels)
        self.size = _check_one_size(self, image)  # (height, width): the training resolution

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        # drawn from torch's generator, which Lightning's seeding and the DataLoader's per-worker seeds
        # make reproducible: the same run augments the same image the same way
        self.compose.set_random_seed(int(torch.randint(2**31 - 1, ())))
        out = self.compose(image=pixels)["image"]
        return out[..., None] if out.ndim == 2 else out


def build_items(augment: DictConfig | None, image: DictConfig) -> AlbumentationsItems | None:
    """The per-image training augmentation of `augment.items`, or None when there is none."""
    entries = (augment or {}).get("items") or []
    return AlbumentationsItems(list(entries), image) if entries else None


def _compose(entries: list):
    """An albumentations Compose of `_target_` entries; a bad entry is refused naming `augment.items[i]`."""
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # else its import asks the network for a newer release
    import albumentations as A
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    transforms = []
    for n, entry in enumerate(entries):
        try:
            transforms.append(
                instantiate(OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else entry)
            )
        except (InstantiationException, TypeError, ValueError) as exc:
            target = entry.get("_target_") if hasattr(entry, "get") else entry
            raise PodiumError(
                f"Cannot build augmentation augment.items[{n}] ({target}): {' '.join(str(exc).split())[:400]}. "
                f"Fix the entry in conf/augment/ (albumentations transforms, e.g. albumentations.HorizontalFlip)."
            ) from None
    return A.Compose(transforms)


def _check_one_size(items: AlbumentationsItems, image: DictConfig) -> tuple[int, int]:
    """The one (height, width) the items turn images into: probed on two random images larger than the network's
    input (odd sizes, both aspect ratios), as photos are. Training batches stack images, so it must be one size."""
    rng = np.random.default_rng(0)
    h, w = int(image.height), int(image.width)
    try:
        shapes = {
            items(rng.integers(0, 256, (height, width, items.channels), dtype=np.uint8)).shape[:2]
            for height, width in ((2 * h + 3, 3 * w + 1), (3 * h + 1, 2 * w + 5))
        }
    except Exception as exc:  # albumentations raises its own types: the user needs the list named, not a traceback
        raise PodiumError(
            f"augment.items fail on a {2 * h + 3}x{3 * w + 1} image ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}). Fix the list in conf/augment/ (or on the command line)."
        ) from None
    if len(shapes) > 1:
        raise PodiumError(
            f"augment.items turn images of different sizes into different sizes ({sorted(shapes)}), so they cannot "
            f"be stacked into a batch. End the list with a transform of one output size, e.g. "
            f"albumentations.RandomResizedCrop with size: [{image.height}, {image.width}] (conf/augment/photo.yaml)."
        )
    return shapes.pop()
