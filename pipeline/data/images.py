"""Decode a competition's images once into a uint8 array (N, C, H, W).

Every image becomes 8-bit grey (channels 1) or 8-bit RGB (channels 3), the same way whatever its
file format or Pillow mode:

1. EXIF orientation is applied first (`PIL.ImageOps.exif_transpose`): a photo stored sideways
   with an Orientation tag decodes the way viewers show it.
2. Bit depth is scaled, never clipped: 16-bit grey (Pillow modes I;16, I;16B, ...) maps 0..65535
   to 0..255 as round(x / 257); mode I (32-bit integers, as Pillow opens many 16-bit TIFFs) is
   read as the same 16-bit range and refused if a value lies outside 0..65535; mode F (floats) must
   lie in [0, 1] and is scaled by 255 and rounded, anything else is refused. 1-bit images give 0
   and 255. (16-bit colour PNGs Pillow itself reads as 8-bit RGB/RGBA, keeping the high byte.)
3. Palette images (P, PA) are expanded to RGB, or RGBA when they carry transparency; CMYK, YCbCr,
   HSV and LAB go to RGB through Pillow's `convert` (LAB by its littleCMS colour management).
4. Alpha is composited over black: colour * alpha / 255, rounded. A fully transparent pixel is
   black whatever colour it stored, a half-transparent one is half as bright. This covers LA,
   RGBA, PA, P/L/RGB/I;16 with a PNG `transparency` entry, and the premultiplied La/RGBa (whose
   colour already is the composite).
5. Grey and colour meet last, through Pillow: RGB -> grey is ITU-R 601 luma
   (L = R*299/1000 + G*587/1000 + B*114/1000), grey -> RGB copies the grey value to all three.
6. Bringing the image to the configured size (when `image.resize`) comes after, on the 8-bit image, by
   `image.fit` (pipeline/data/image_fit.py). Large JPEGs are decoded at a reduced scale that still
   covers that size (libjpeg's DCT scaling), much faster than a whole decode.

An 8-bit grey or RGB image already in the wanted mode goes straight through (no copy), so the
common case costs what it always did and decodes byte for byte as before.

Files Pillow refuses become a PodiumError naming the file: empty files, files that are not
images, corrupt ones, and decompression bombs (more than 2 x PIL.Image.MAX_IMAGE_PIXELS pixels,
Pillow's DecompressionBombError). Between 1x and 2x that limit Pillow only warns; those images are
decoded, and the per-image warnings are replaced by one log line at the end (see `BigImages`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline import progress
from pipeline.data.image_modes import to_mode
from pipeline.errors import PodiumError

log = logging.getLogger(__name__)


def image_paths(ids: Sequence[str], folder: Path, suffix: str) -> list[Path]:
    """`<folder>/<id><suffix>` for each id, each checked to exist and to lie inside `folder`.

    A symlink is followed only to a file inside the image folder (resolved), so an id cannot make
    Podium read a file elsewhere on the machine into a model, a cache or a bundle; the image folder
    itself may be a symlink.
    """
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
    inside = folder.resolve()
    outside = [p for p in paths if p.is_symlink() and not p.resolve().is_relative_to(inside)]
    if outside:
        raise PodiumError(
            f"{len(outside)} image(s) in {folder} are symlinks to files outside it, e.g. {outside[0].name} -> "
            f"{outside[0].resolve()}. Podium reads images only from inside the image folder: copy the file "
            f"into {folder} in place of the link, or remove its row."
        )
    return paths


def image_mode(image: DictConfig) -> str:
    """The Pillow mode `competition.image.channels` asks for: L (1) or RGB (3)."""
    mode = {1: "L", 3: "RGB"}.get(image.channels)
    if mode is None:
        raise PodiumError(f"competition.image.channels must be 1 or 3 (got {image.channels}).")
    return mode


def decode_images(
    ids: Sequence[str],
    folder: Path,
    suffix: str,
    image: DictConfig,
    what: str = "images",
    seen: list[tuple[int, int, str]] | None = None,
) -> np.ndarray:
    """Read `<folder>/<id><suffix>` for each id, as grey or RGB, at the configured size (brought to it
    by `image.fit` when `image.resize`; pipeline/data/image_fit.py).

    `seen`, if given, receives each file's (width, height, Pillow mode) as found (the data profile's).
    """
    paths = image_paths(ids, folder, suffix)
    mode = image_mode(image)
    out = np.empty((len(paths), image.channels, image.height, image.width), dtype=np.uint8)
    big = BigImages()
    with progress.bar(f"decoding {what}", total=len(paths)) as decoding, big:
        for n, path in enumerate(paths):
            out[n] = channels_first(fit_to(read_image(path, mode, big, seen, draft=draft_size(image)), path, image))
            decoding.advance()
    big.report(what)
    return out


def draft_size(image) -> tuple[int, int] | None:
    """The size a JPEG may be decoded down to: competition.image's when images are resized, else none (a file
    must then have that size itself, checked on the whole decode)."""
    return (image["width"], image["height"]) if image["resize"] else None


def channels_first(img) -> np.ndarray:
    """A Pillow L or RGB image as a uint8 array (C, H, W)."""
    pixels = np.asarray(img)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def fit_to(img, path: Path, image: DictConfig):
    """`img` at competition.image's size: by `image.fit` when `image.resize`, otherwise refused if it differs."""
    from pipeline.data.image_fit import fit_image

    if img.size == (image.width, image.height):
        return img
    if not image.resize:
        raise wrong_size(path, img.size, image)
    return fit_image(img, image.width, image.height, image.get("fit", "resize"))


def wrong_size(path: Path, size: tuple[int, int], image: DictConfig) -> PodiumError:
    """The error for an image of `size` (width, height) where competition.image's size is required."""
    return PodiumError(
        f"Image {path} is {size[0]}x{size[1]} pixels but competition.image is {image.width}x{image.height}. "
        f"Replace it with an image of that size, or set competition.image.resize=true to bring every image "
        f"to that size when it is read (competition.image.fit: resize, center_crop or letterbox)."
    )


def read_image(path: Path, mode: str, big: BigImages, seen: list | None = None, draft: tuple[int, int] | None = None):
    """The image at `path` as an 8-bit Pillow image in `mode` (L or RGB), by the module docstring's rules.

    `draft`: a JPEG may be decoded straight at a smaller scale (1/2, 1/4, 1/8) that still covers this
    (width, height) either way round (EXIF may turn it): libjpeg scales while decoding, many times
    faster than decoding a large photo whole and shrinking it after.
    """
    img, found = _read(path, big, draft)
    if seen is not None:
        seen.append((*found, img.mode))
    return to_mode(img, mode, path)


# ---------------------------------------------------------------- reading


def _read(path: Path, big: BigImages, draft: tuple[int, int] | None = None):
    """The decoded image at `path` (pixels loaded, file closed), upright per its EXIF orientation, and the
    file's own (width, height) as shown upright: a draft decodes it smaller."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            stored = img.size
            big.check(path, stored, Image.MAX_IMAGE_PIXELS)  # read now: a user may have changed it
            if draft is not None and img.format == "JPEG":
                side = max(draft)  # both ways round: an EXIF rotation swaps width and height after decoding
                img.draft(None, (side, side))
            img.load()
            decoded = img.size
            if _may_be_oriented(img):
                ImageOps.exif_transpose(img, in_place=True)
            return img, stored[::-1] if img.size != decoded else stored
    except Image.DecompressionBombError as exc:  # not an OSError: caught first, on its own
        raise _bomb_error(path, exc) from None
    # Pillow reports corrupt files as any of these, depending on the format and where the data breaks.
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _unreadable_error(path, exc) from None


# Where Pillow's Image.getexif finds an Orientation for PNG and JPEG files: the EXIF block (eXIf/APP1
# or a PNG text chunk holding it) and XMP. Neither plugin has another source (JPEG has no getexif of
# its own; PNG's only loads the image first, done by then), so without these keys there is nothing
# to rotate. Checking costs ~0.1 us; exif_transpose's own look costs ~5 us, 10% of decoding a 28x28 PNG.
_ORIENTATION_KEYS = {"exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"}


def _may_be_oriented(img) -> bool:
    """False only when the image certainly has no EXIF/XMP orientation (PNG and JPEG; other formats: True)."""
    return img.format not in ("PNG", "JPEG") or not _ORIENTATION_KEYS.isdisjoint(img.info)


def _unreadable_error(path: Path, exc: Exception) -> PodiumError:
    from PIL import UnidentifiedImageError

    fix = "Replace the file or remove its row."
    try:
        empty = path.stat().st_size == 0  # looked at only on failure: no extra system call per good image
    except OSError:
        empty = False
    if empty:
        return PodiumError(f"Corrupt or unreadable image {path}: it is empty (0 bytes). {fix}")
    if (
        "truncated" in str(exc).lower()
    ):  # Pillow's words differ by format: "image file is truncated", "Truncated File Read"
        return PodiumError(
            f"Corrupt or unreadable image {path}: it is truncated (the file ends before its image data do, as after an "
            f"interrupted download or copy). {fix}"
        )
    if isinstance(exc, UnidentifiedImageError):
        return PodiumError(
            f"Corrupt or unreadable image {path}: it is not an image Pillow can read "
            f"(no known image format starts like this file). {fix}"
        )
    return PodiumError(f"Corrupt or unreadable image {path}: {exc}. {fix}")


def _bomb_error(path: Path, exc: Exception) -> PodiumError:
    import re

    from PIL import Image

    # Pillow raises before decoding anything and keeps the size only in its message
    # ("Image size (N pixels) exceeds limit of M pixels, ..."): take the count from there.
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(found[1]):,} pixels" if found else f"too many pixels ({exc})"
    limit = 2 * Image.MAX_IMAGE_PIXELS
    return PodiumError(
        f"Image {path} declares {pixels}, more than Pillow decodes ({limit:,} pixels, twice "
        f"PIL.Image.MAX_IMAGE_PIXELS), so it is refused as a possible decompression bomb. If it is a "
        f"real image, shrink the file (e.g. to the competition's image size) and run again; otherwise "
        f"replace the file or remove its row."
    )


class BigImages:
    """Pillow's DecompressionBombWarning, once per run instead of once per image.

    Images between MAX_IMAGE_PIXELS and twice that decode correctly, so they are not refused (that
    would leave no way forward but editing the files, with Pillow's limit left alone). But Python
    shows a warning once per distinct message, and Pillow's message holds the pixel count, so a
    folder of large scans would print one warning per size. Pillow's warnings are silenced while
    decoding, the images counted here, and one log line says how many and which.
    """

    def __init__(self):
        self.count, self.first, self.limit = 0, None, None

    def __enter__(self):
        from PIL import Image

        self._saved = warnings.catch_warnings()
        self._saved.__enter__()
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return self

    def __exit__(self, *exc) -> None:
        self._saved.__exit__(*exc)

    def check(self, path: Path, size: tuple[int, int], limit: int | None) -> None:
        """Count the image if it is over Pillow's warning limit (None: no limit)."""
        self.limit = limit
        if limit is not None and size[0] * size[1] > limit:
            self.count += 1
            self.first = self.first or (path, size)

    def report(self, what: str) -> None:
        if self.count:
            path, (w, h) = self.first
            log.warning(
                "%d of the %s exceed Pillow's decompression-bomb warning limit of %s pixels "
                "(PIL.Image.MAX_IMAGE_PIXELS), e.g. %s (%dx%d = %s pixels); decoded anyway. Shrinking them "
                "to the competition's image size would make decoding faster.",
                self.count,
                what,
                f"{self.limit:,}",
                path,
                w,
                h,
                f"{w * h:,}",
            )
