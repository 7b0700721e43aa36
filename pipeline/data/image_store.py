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
path, size, modification time, the mode and the side. Later epochs, folds and runs of augmented
training decode the small file instead of the full-size one; a changed file gets a new key.
Evaluation reads the files themselves, so its pixels are `cache`'s and `podium predict`'s.
`prepare` fills the cache while it checks the files. An image no larger than the side gets an
empty marker instead: its own file is read, so a small image is never degraded by a copy (and
streams the pixels `cache` decodes). JPEG, not raw pixels: as fast to read here (about 1,450
images/s a core at 512 px, against 560 for the 300-900 px originals) at a sixteenth of the disk
(benchmarks/images.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline import io, progress

log = logging.getLogger(__name__)

STORES = ("auto", "cache", "stream")


def memory_budget_bytes(data_cfg: DictConfig) -> int:
    """`data.image_memory_gb` in bytes, or a quarter of the memory this process may use when null (the machine's,
    or its cgroup's limit where that is lower, as in a container)."""
    if data_cfg.get("image_memory_gb") is not None:
        return int(float(data_cfg.image_memory_gb) * 2**30)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()  # cgroup v2; "max": no limit
        total = min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        pass
    return total // 4


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
        from pipeline.data.images import image_mode

        return image_mode(self.config)

    @cached_property
    def config(self) -> DictConfig:
        """`image` as a DictConfig, made once per reader (per worker), not once per image."""
        return OmegaConf.create(self.image)

    def read(self, path: Path):
        """The image at `path`, normalised (L or RGB), from the disk cache when there is one (Pillow image)."""
        if self.cache is None:
            return self.direct(path)
        from PIL import Image

        key = self.key(path)
        entry = self.cache / f"{key}.jpg"
        try:
            with Image.open(entry) as cached:
                cached.load()
                return cached
        except FileNotFoundError:
            pass
        except OSError:  # a damaged entry (a full disk, a killed writer before os.replace cannot leave one): redo it
            entry.unlink(missing_ok=True)
        if (self.cache / f"{key}{SAME}").exists():
            return self.direct(path)
        pixels = self.decode_for_cache(path)
        write_entry(self.cache, key, pixels)
        return self.direct(path) if pixels is None else Image.fromarray(pixels)

    def direct(self, path: Path, big=None, seen: list | None = None):
        """The image at `path`, normalised, decoded from the file itself (what `cache` decodes too)."""
        from pipeline.data.images import BigImages, draft_size, read_image

        if big is None:
            with BigImages() as own:
                return self.direct(path, own, seen)
        return read_image(path, self.mode, big, seen, draft=draft_size(self.image))

    def decode_for_cache(self, path: Path, big=None, seen: list | None = None) -> np.ndarray | None:
        """The image at `path`, normalised and shrunk to the cache's side, as a uint8 array (H, W[, C]); None
        for an image no larger than the side: the file itself is read then (a copy would only lose detail)."""
        from pipeline.data.image_fit import shrink_to_side
        from pipeline.data.images import BigImages, read_image

        assert self.side is not None
        if big is None:
            with BigImages() as own:
                return self.decode_for_cache(path, own, seen)
        draft = (self.side, self.side) if self.image["resize"] else None
        img = read_image(path, self.mode, big, seen, draft=draft)
        return np.asarray(shrink_to_side(img, self.side)) if max(img.size) > self.side else None

    def fitted(self, img, path: Path) -> np.ndarray:
        """A Pillow image at competition.image's size (`image.fit`), as uint8 (C, H, W): evaluation's input."""
        from pipeline.data.images import channels_first, fit_to

        return channels_first(fit_to(img, path, self.config))

    def key(self, path: Path) -> str:
        """The disk cache's key of `path`: its resolved path, size and modification time, the mode and the side."""
        stat = path.stat()
        parts = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{self.mode}\0{self.side}"
        return hashlib.sha256(parts.encode()).hexdigest()[:32]


SAME = ".same"  # an empty entry: the image is within the side, read the file itself


def write_entry(folder: Path, key: str, pixels: np.ndarray | None) -> None:
    """Write one cache entry atomically (workers and DDP processes, on one machine or a shared file system, may
    write the same one at once): the shrunk image as a JPEG of quality 95 without chroma subsampling, or, for
    `None`, the empty marker SAME."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / (f"{key}.jpg" if pixels is not None else f"{key}{SAME}")
    temp = folder / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        if pixels is None:
            temp.write_bytes(b"")
        else:
            Image.fromarray(pixels).save(temp, format="JPEG", quality=95, subsampling=0)  # 4:4:4: full-size colour
        os.replace(temp, entry)
    finally:
        temp.unlink(missing_ok=True)


def image_reader(image: DictConfig, data_cfg: DictConfig, cache_root: Path) -> ImageReader:
    """The reader for a streamed competition: with the disk cache under `cache_root`/images when configured."""
    side = data_cfg.get("image_cache_side")
    return ImageReader(
        image=OmegaConf.to_container(image, resolve=True),
        cache=cache_root / "images" if side else None,
        side=int(side) if side else None,
    )


def read_images(
    cfg: DictConfig, source: Path, folder: Path, train: pd.DataFrame, test: pd.DataFrame, seen: dict[str, list]
) -> tuple[dict[str, np.ndarray], dict]:
    """`prepare`'s images by the chosen path: `cache` decodes them into arrays; `stream` checks each file (and fills
    the disk cache) and keeps where they are. Returns the arrays and meta.json's record of the path."""
    from pipeline.data.images import decode_images, image_paths

    comp = cfg.competition
    store, why = choose_store(comp.image, cfg.data, len(train) + len(test))
    log.info("images: %s (%s)", store, why)
    images = {}
    reader = image_reader(comp.image, cfg.data, io.root(cfg) / cfg.paths.cache)
    for split, frame in (("train", train), ("test", test)):
        ids = frame[comp.id_column].tolist()
        if store == "cache":
            log.info("decoding %d %s images from %s", len(frame), split, source)
            images[split] = decode_images(
                ids, source, comp.files.image_suffix, comp.image, what=f"{split} images", seen=seen[split]
            )
        else:
            check_files(image_paths(ids, source, comp.files.image_suffix), reader, f"{split} images", seen[split])
    stored = {"store": store, "why": why}
    if store == "stream":  # the folder relative to the prepared folder: it moves with the project
        stored |= {
            "folder": os.path.relpath(source.resolve(), folder.resolve()),
            "suffix": comp.files.image_suffix,
            "id_column": comp.id_column,
        }
    return images, stored


def streamed_identity(cfg: DictConfig, stored: dict | None, files_digest: str) -> str | None:
    """What streamed images add to the prepared data's identity (fold results computed from other pixels are not
    reused): the files' content and everything that shapes the pixels read: size, fit, resize, the cache's side."""
    if not stored or stored["store"] != "stream":
        return None
    image = OmegaConf.to_container(cfg.competition.image, resolve=True)
    image.pop("store", None)  # how the path was chosen, not what it reads
    return json.dumps({"files": files_digest, "image": image, "side": cfg.data.get("image_cache_side")}, sort_keys=True)


def check_files(paths: list[Path], reader: ImageReader, what: str, seen: list) -> None:
    """Decode every file once, so a bad one is refused by `prepare`, not mid-training; fill the disk cache.

    New cache entries are written to a staging folder and moved into the cache only when every file
    has been read: a refused file leaves the cache as it was. Files with an entry already are only
    opened (their size for the profile and the size check): they were decoded when the entry was written.
    """
    from pipeline.data.images import BigImages, fit_to, wrong_size

    image = reader.config
    staging = None
    if reader.cache is not None:
        _remove_abandoned_staging(reader.cache)
        staging = reader.cache / f".staging-{os.getpid()}"
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
                        write_entry(staging, key, reader.decode_for_cache(path, big, seen))
                    if not image.resize and seen[-1][:2] != (image.width, image.height):
                        raise wrong_size(path, seen[-1][:2], image)
                bar.advance()
        big.report(what)
        if staging is not None and staging.is_dir():
            for written in staging.iterdir():
                os.replace(written, reader.cache / written.name)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _remove_abandoned_staging(cache: Path) -> None:
    """Staging folders of `prepare` runs that were killed (their process is gone)."""
    from pipeline.io import process_alive

    for staging in cache.glob(".staging-*"):
        pid = staging.name.removeprefix(".staging-")
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _header(path: Path) -> tuple[int, int, str]:
    """The file's (width, height) as shown upright (EXIF orientations 5-8 swap them) and its mode, undecoded."""
    from PIL import Image

    with Image.open(path) as img:
        turned = img.getexif().get(0x0112) in (5, 6, 7, 8)
        return (img.height, img.width, img.mode) if turned else (img.width, img.height, img.mode)
