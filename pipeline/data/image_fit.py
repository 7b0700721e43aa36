"""Bring an image of any size to the size fed to the network, by the policy `competition.image.fit`.

- `resize`: stretch to width x height (the aspect ratio changes if it differs).
- `center_crop`: scale so the image covers width x height, keeping its aspect ratio, and cut the
  middle: nothing is stretched, the borders of the longer side are lost.
- `letterbox`: scale so the image fits inside width x height, keeping its aspect ratio, and pad
  the rest with black: nothing is lost or stretched, part of the input is padding.

Every policy resamples once, with Pillow's BILINEAR (antialiased when shrinking), and leaves an
image already of the size untouched. The `cache` data path applies it when `prepare` decodes; the
`stream` path when a worker reads the file for evaluation or prediction: the same pixels, unless the
disk cache (data.image_cache_side) shrank a larger photo first.
"""

from __future__ import annotations

FITS = ("resize", "center_crop", "letterbox")


def fit_image(img, width: int, height: int, fit: str):
    """`img` (a Pillow image) at `width` x `height` by the policy `fit` (one of FITS)."""
    from PIL import Image

    if img.size == (width, height):
        return img
    w, h = img.size
    if fit == "resize":
        return img.resize((width, height), Image.BILINEAR)
    if fit == "center_crop":
        scale = max(width / w, height / h)
        # the source box that scales to exactly width x height: one resample, no rounding of a middle size
        box_w, box_h = min(w, width / scale), min(h, height / scale)  # min: float rounding past the edge
        left, top = (w - box_w) / 2, (h - box_h) / 2
        return img.resize((width, height), Image.BILINEAR, box=(left, top, left + box_w, top + box_h))
    if fit == "letterbox":
        scale = min(width / w, height / h)
        inner = (max(1, round(w * scale)), max(1, round(h * scale)))
        canvas = Image.new(img.mode, (width, height))  # black
        canvas.paste(img.resize(inner, Image.BILINEAR), ((width - inner[0]) // 2, (height - inner[1]) // 2))
        return canvas
    raise ValueError(f"unknown fit {fit!r}; one of {FITS}")  # the config check names the key first


def shrink_to_side(img, side: int):
    """`img` scaled down (aspect kept, BILINEAR) so its longer side is at most `side`; smaller images as they are."""
    from PIL import Image

    w, h = img.size
    if max(w, h) <= side:
        return img
    scale = side / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
