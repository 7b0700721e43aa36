"""An image of any Pillow mode as 8-bit grey (L) or RGB, by rules 2-5 of pipeline/data/images.py's docstring.

Bit depth is scaled, never clipped; palettes and other colour spaces are expanded to RGB; alpha is
composited over black; grey and colour meet last, through Pillow (ITU-R 601 luma one way, copies
the other). An 8-bit image already in the wanted mode goes straight through, untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import PodiumError

# Modes that go to 8-bit RGB through Pillow's convert (LAB through littleCMS, which Pillow calls itself;
# Pillow has no LAB -> L, so grey always goes through RGB, the same way for every colour space).
_TO_RGB = {"RGBX", "CMYK", "YCbCr", "HSV", "LAB"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def to_mode(img, mode: str, path: Path):
    """`img` as an 8-bit Pillow image in `mode` ("L" or "RGB"), by the rules of the module docstring."""
    if img.mode == mode and "transparency" not in img.info:
        return img  # the common case: already right, nothing to do (and byte-identical to Pillow's decode)
    img = _over_black(_eight_bit(img, path))
    return img if img.mode == mode else img.convert(mode)


def _eight_bit(img, path: Path):
    """`img` as one of L, RGB, LA, RGBA (8 bits a channel), or La/RGBa (premultiplied, kept as they are)."""
    m, info = img.mode, img.info
    if m in ("L", "RGB"):
        # a PNG tRNS entry: one grey value or colour that stands for "transparent"
        return img.convert(m + "A") if "transparency" in info else img
    if m in ("LA", "RGBA", "La", "RGBa"):
        return img
    if m == "1":
        return img.convert("L")
    if m in ("P", "PA"):
        # expand the palette; Pillow turns the palette's transparency (one index, or one alpha per entry) into alpha
        transparent = m == "PA" or "transparency" in info or (img.palette is not None and img.palette.mode == "RGBA")
        return img.convert("RGBA" if transparent else "RGB")
    if m in _TO_RGB:
        return _to_rgb(img, path)
    if m in _SIXTEEN_BIT or m == "I":
        return _from_sixteen_bit(img, path)
    if m == "F":
        return _from_float(img, path)
    raise PodiumError(
        f"Image {path} has Pillow mode {m}, which Podium does not know how to turn into 8-bit grey or RGB. "
        f"Convert it to an 8-bit grey or RGB PNG, or remove its row."
    )


def _from_sixteen_bit(img, path: Path):
    """16-bit grey (I;16*, or I holding 16-bit values) to L: 0..65535 -> 0..255 as round(x / 257)."""
    from PIL import Image

    values = np.asarray(img)  # uint16 in the file's byte order for I;16*, int32 for I
    if img.mode == "I":
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise PodiumError(
                f"Image {path} is a 32-bit integer image (Pillow mode I) with values from {low} to {high}, "
                f"outside the 16-bit range 0..65535 that Podium scales to 0..255. Save it as an 8-bit or "
                f"16-bit grey PNG (values rescaled to that range), or remove its row."
            )
    # (x + 128) // 257 is round(x / 257) exactly: 257 is odd, so there are no ties to break
    grey = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    transparent = img.info.get("transparency")
    if isinstance(transparent, int):  # a 16-bit PNG's tRNS value: those pixels are transparent, so black
        grey[values == transparent] = 0
    return Image.fromarray(grey)  # 2-D uint8: mode L


def _from_float(img, path: Path):
    """Float grey (F) to L: [0, 1] -> 0..255, rounded; values outside [0, 1] (or NaN) refused."""
    from PIL import Image

    values = np.asarray(img)
    inside = (values >= 0) & (values <= 1)  # False for NaN too
    if not inside.all():
        bad = values[~inside]
        finite = values[np.isfinite(values)]
        found = f"values from {finite.min():g} to {finite.max():g}" if finite.size else "no finite values"
        if np.isnan(bad).any():
            found += " and NaN"
        raise PodiumError(
            f"Image {path} is a floating-point image (Pillow mode F) with {found}, outside the range [0, 1] "
            f"that Podium scales to 0..255. Rescale it to [0, 1] or save it as an 8-bit or 16-bit grey PNG, "
            f"or remove its row."
        )
    # in float64: float32 products land just off the .5 ties and would round either way
    return Image.fromarray(np.floor(values.astype(np.float64) * 255 + 0.5).astype(np.uint8))  # 2-D uint8: mode L


def _to_rgb(img, path: Path):
    """A colour image in another colour space (CMYK, YCbCr, HSV, LAB, RGBX) as RGB, through Pillow."""
    try:
        return img.convert("RGB")
    except (ImportError, OSError, ValueError) as exc:  # LAB needs Pillow's littleCMS (ImageCms), not in every build
        raise PodiumError(
            f"Image {path} is in Pillow mode {img.mode} and this Pillow cannot convert it to RGB ({exc}). "
            f"Convert it to an 8-bit RGB PNG, or remove its row."
        ) from None


def _over_black(img):
    """An image with alpha composited over black (colour * alpha / 255, rounded): L or RGB out."""
    from PIL import Image

    if img.mode in ("L", "RGB"):
        return img
    pixels = np.asarray(img)
    colour = pixels[..., :-1]
    if img.mode in ("LA", "RGBA"):
        alpha = pixels[..., -1:].astype(np.uint16)
        # (c * a + 127) // 255 is round(c * a / 255) exactly (255 is odd: no ties); Pillow's premultiply agrees
        colour = ((colour * alpha + 127) // 255).astype(np.uint8)
    # La and RGBa are premultiplied already: their colour is the composite over black
    colour = colour[..., 0] if colour.shape[-1] == 1 else colour
    return Image.fromarray(np.ascontiguousarray(colour))  # uint8, 2-D or (H, W, 3): mode L or RGB
