"""Decode a competition's images once into a uint8 array (N, C, H, W)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from omegaconf import DictConfig

from pipeline import progress
from pipeline.errors import PodiumError


def decode_images(ids: Sequence[str], folder: Path, suffix: str, image: DictConfig, what: str = "images") -> np.ndarray:
    """Read `<folder>/<id><suffix>` for each id, as grey or RGB, at the configured size (resized if `image.resize`)."""
    if not folder.is_dir():
        raise PodiumError(
            f"Image folder {folder} does not exist. Put one image per id there, named <id>{suffix}, "
            f"or fix `files.images` in the competition's YAML."
        )
    paths = [folder / f"{i}{suffix}" for i in ids]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise PodiumError(
            f"{len(missing)} image(s) missing from {folder}, e.g. {missing[:5]}. Each id in train.csv "
            f"and test.csv needs an image named <id>{suffix}."
        )
    mode = {1: "L", 3: "RGB"}.get(image.channels)
    if mode is None:
        raise PodiumError(f"competition.image.channels must be 1 or 3 (got {image.channels}).")
    size = (image.width, image.height)
    out = np.empty((len(paths), image.channels, image.height, image.width), dtype=np.uint8)
    with progress.bar(f"decoding {what}", total=len(paths)) as decoding:
        for n, path in enumerate(paths):
            _decode_into(out, n, path, mode, size, image)
            decoding.advance()
    return out


def _decode_into(out: np.ndarray, n: int, path: Path, mode: str, size: tuple[int, int], image: DictConfig) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if img.size != size and image.resize:
                img = img.resize(size, Image.BILINEAR)
            pixels = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise PodiumError(f"Corrupt or unreadable image {path}: {exc}. Replace the file or remove its row.") from None
    if pixels.shape[:2] != (image.height, image.width):
        raise PodiumError(
            f"Image {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels but competition.image is "
            f"{image.width}x{image.height}. Replace it with an image of that size, or set "
            f"competition.image.resize=true to resize every image when it is decoded."
        )
    out[n] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
