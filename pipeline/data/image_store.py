"""The two ways training reads a competition's images, and the disk cache of the second.

- `cache`: `prepare` decodes every image once at competition.image's size into one uint8 array
  (N, C, H, W), saved as .npy. Training memory-maps it and takes rows per item: the array is never
  copied whole, and the DDP processes of a machine share its pages through the map.
- `stream`: `prepare` checks every file and writes nothing but tables; DataLoader workers decode
  each image when it is drawn. Memory stays flat in the number of images, and a training
  augmentation such as a random resized crop sees the photo, not a small decoded copy.

`competition.image.store: auto` picks `cache` when the decoded array fits `data.image_memory_gb`
(default: a quarter of this machine's memory), `stream` otherwise, and says which and why.

Streaming keeps a resized-on-first-read disk cache (`data.image_cache_side`, e.g. 512): each
image decoded, normalised and scaled down so its longer side is at most that, stored under
`<paths.cache>/images/` as a JPEG of quality 95 without chroma subsampling, keyed by the file's
path, size, modification time, the mode and the side. Later epochs, folds and runs decode the small
file instead of the full-size one; a changed file gets a new key. `prepare` fills it while it checks
the files. An image no larger than the side gets an empty marker instead: its own file is read, so
a small image is never degraded by a copy (and streams the pixels `cache` decodes). JPEG, not raw pixels: as fast to read here (about 1,450 images/s a core at 512 px, against
560 for the 300-900 px originals) at a sixteenth of the disk (benchmarks/images.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline import progress

log = logging.getLogger(__name__)

STORES = ("auto", "cache", "stream")


def memory_budget_bytes(data_cfg: DictConfig) -> int:
    """`data.image_memory_gb` in bytes, or a quarter of this machine's physical memory when null."""
    if data_cfg.get("image_memory_gb") is not None:
        return int(float(data_cfg.image_memory_gb) * 2**30)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def choose_store(image: DictConfig, data_cfg: DictConfig, n_images: int) -> tuple[str, str]:
    """(`cache` or `stream`, why): `image.store` if set, else by the decoded size against the memory budget."""
    decoded = n_images * image.channels * image.height * image.width
    size = f"{n_images:,} images decoded at {image.width}x{image.height}x{image.channels} take {decoded / 2**30:.2f} GB"
    store = image.get("store", "cache")
    if store != "auto":
        return store, f"competition.image.store={store} ({size})"
    budget = memory_budget_bytes(data_cfg)
    if decoded <= budget:
        return "cache", f"{size}, within the {budget / 2**30:.1f} GB budget (data.image_memory_gb)"
    return "stream", f"{size}, more than the {budget / 2**30:.1f} GB budget (data.image_memory_gb)"


@dataclass(frozen=True)
class ImageReader:
    """Reads one image file as the network's input: normalised (pipeline/data/images.py), then fitted.

    Plain values only, so DataLoader workers receive it cheaply whatever their start method.
    """

    image: dict  # competition.image as a plain dict: channels, height, width, resize, fit
    cache: Path | None = None  # the disk cache folder (data.image_cache_side set), or None
    side: int | None = None

    @property
    def mode(self) -> str:
        return "L" if self.image["channels"] == 1 else "RGB"

    def read(self, path: Path):
        """The image at `path`, normalised (L or RGB), from the disk cache when there is one (Pillow image)."""
        if self.cache is None:
            return self.direct(path)
        from PIL import Image

        key = self.key(path)
        try:
            with Image.open(self.cache / f"{key}.jpg") as cached:
                cached.load()
                return cached
        except FileNotFoundError:
            pass
        if (self.cache / f"{key}{SAME}").exists():
            return self.direct(path)
        pixels = self.decode_for_cache(path)
        write_entry(self.cache, key, pixels)
        return self.direct(path) if pixels is None else Image.fromarray(pixels)

    def direct(self, path: Path, big=None, seen: list | None = None):
        """The image at `path`, normalised, decoded from the file itself (what `cache` decodes too)."""
        from pipeline.data.images import BigImages, read_image

        if big is None:
            with BigImages() as own:
                return self.direct(path, own, seen)
        return read_image(path, self.mode, big, seen, draft=(self.image["width"], self.image["height"]))

    def decode_for_cache(self, path: Path, big=None, seen: list | None = None) -> np.ndarray | None:
        """The image at `path`, normalised and shrunk to the cache's side, as a uint8 array (H, W[, C]); None
        for an image no larger than the side: the file itself is read then (a copy would only lose detail)."""
        from pipeline.data.image_fit import shrink_to_side
        from pipeline.data.images import BigImages, read_image

        assert self.side is not None
        if big is None:
            with BigImages() as own:
                return self.decode_for_cache(path, own, seen)
        img = read_image(path, self.mode, big, seen, draft=(self.side, self.side))
        return np.asarray(shrink_to_side(img, self.side)) if max(img.size) > self.side else None

    def fitted(self, img, path: Path) -> np.ndarray:
        """A Pillow image at competition.image's size (`image.fit`), as uint8 (C, H, W): evaluation's input."""
        from omegaconf import OmegaConf

        from pipeline.data.images import channels_first, fit_to

        return channels_first(fit_to(img, path, OmegaConf.create(self.image)))

    def key(self, path: Path) -> str:
        """The disk cache's key of `path`: its resolved path, size and modification time, the mode and the side."""
        stat = path.stat()
        parts = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{self.mode}\0{self.side}"
        return hashlib.sha256(parts.encode()).hexdigest()[:32]


SAME = ".same"  # an empty entry: the image is within the side, read the file itself


def write_entry(folder: Path, key: str, pixels: np.ndarray | None) -> None:
    """Write one cache entry atomically (workers and DDP processes may write the same one at once): the shrunk
    image as a JPEG of quality 95 without chroma subsampling, or, for `None`, the empty marker SAME."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / (f"{key}.jpg" if pixels is not None else f"{key}{SAME}")
    temp = folder / f".{key}.{os.getpid()}.tmp"
    if pixels is None:
        temp.write_bytes(b"")
    else:
        Image.fromarray(pixels).save(temp, format="JPEG", quality=95, subsampling=0)  # 4:4:4: full-size colour
    os.replace(temp, entry)


def image_reader(image: DictConfig, data_cfg: DictConfig, cache_root: Path) -> ImageReader:
    """The reader for a streamed competition: with the disk cache under `cache_root`/images when configured."""
    from omegaconf import OmegaConf

    side = data_cfg.get("image_cache_side")
    return ImageReader(
        image=OmegaConf.to_container(image, resolve=True),
        cache=cache_root / "images" if side else None,
        side=int(side) if side else None,
    )


def check_files(paths: list[Path], reader: ImageReader, what: str, seen: list) -> None:
    """Decode every file once, so a bad one is refused by `prepare`, not mid-training; fill the disk cache.

    New cache entries are written to a staging folder and moved into the cache only when every file
    has been read: a refused file leaves the cache as it was. Files with an entry already are only
    opened (their size and mode for the profile): they were checked when the entry was written.
    """
    from omegaconf import OmegaConf

    from pipeline.data.images import BigImages, fit_to, wrong_size

    image = OmegaConf.create(reader.image)
    staging = reader.cache / f".staging-{os.getpid()}" if reader.cache is not None else None
    try:
        with progress.bar(f"checking {what}", total=len(paths)) as bar, BigImages() as big:
            for path in paths:
                if reader.cache is None:
                    fit_to(reader.direct(path, big, seen), path, image)
                else:
                    key = reader.key(path)
                    if any((reader.cache / f"{key}{end}").is_file() for end in (".jpg", SAME)):
                        seen.append(_header(path))
                    else:
                        pixels = reader.decode_for_cache(path, big, seen)
                        if not image.resize and seen[-1][:2] != (image.width, image.height):
                            raise wrong_size(path, seen[-1][:2], image)
                        write_entry(staging, key, pixels)
                bar.advance()
        big.report(what)
        if staging is not None and staging.is_dir():
            for written in staging.iterdir():
                os.replace(written, reader.cache / written.name)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _header(path: Path) -> tuple[int, int, str]:
    from PIL import Image

    with Image.open(path) as img:
        return img.width, img.height, img.mode
