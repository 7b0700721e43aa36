"""decode_images on real files of every Pillow mode: faithful 8-bit values, alpha over black,
EXIF orientation, and one-paragraph errors for files Pillow refuses."""

from __future__ import annotations

import logging
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from pipeline.data.images import decode_images
from pipeline.errors import PodiumError

pytestmark = pytest.mark.fast  # no training, no servers


def decode(path: Path, channels: int, height: int, width: int, resize: bool = False) -> np.ndarray:
    """The (C, H, W) uint8 array decode_images makes of the one file at `path`."""
    image = OmegaConf.create({"height": height, "width": width, "channels": channels, "resize": resize})
    return decode_images([path.stem], path.parent, path.suffix, image)[0]


def gradient16(height: int = 4, width: int = 1024) -> np.ndarray:
    """Every row 0..65535 in even steps: as many distinct 16-bit values as there are columns."""
    return np.tile(np.linspace(0, 65535, width).round().astype(np.uint16), (height, 1))


def expected8(values: np.ndarray) -> np.ndarray:
    """round(x / 257), in floating point: the scaling the module promises for 16-bit values."""
    return np.rint(values.astype(np.float64) / 257).astype(np.uint8)


# ---------------------------------------------------------------- bit depth


def test_16bit_png_spans_the_whole_8bit_range(tmp_path):
    # the old code's convert("L") clipped this to 0 and 255 only (5 distinct values in all)
    values = gradient16()
    Image.fromarray(values).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "I;16"
    grey = decode(tmp_path / "g.png", 1, *values.shape)[0]
    np.testing.assert_array_equal(grey, expected8(values))
    assert len(np.unique(grey)) == 256


def test_16bit_big_endian_tiff_and_grey_to_rgb(tmp_path):
    values = gradient16()
    Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes()).save(tmp_path / "g.tif")
    assert Image.open(tmp_path / "g.tif").mode == "I;16B"
    rgb = decode(tmp_path / "g.tif", 3, *values.shape)
    for band in rgb:  # grey -> RGB copies the grey value to each channel
        np.testing.assert_array_equal(band, expected8(values))


def test_32bit_integer_image_is_read_as_16bit(tmp_path):
    values = gradient16()
    Image.fromarray(values.astype(np.int32)).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    np.testing.assert_array_equal(decode(tmp_path / "i.tif", 1, *values.shape)[0], expected8(values))


@pytest.mark.parametrize("bad", [70000, -1])
def test_32bit_integer_image_outside_16bit_range_is_refused(tmp_path, bad):
    values = gradient16().astype(np.int32)
    values[0, 0] = bad
    Image.fromarray(values).save(tmp_path / "i.tif")
    low, high = min(bad, 0), max(bad, 65535)
    with pytest.raises(
        PodiumError,
        match=rf"i\.tif is a 32-bit integer image \(Pillow mode I\) with values from "
        rf"{low} to {high}, outside the 16-bit range 0\.\.65535",
    ):
        decode(tmp_path / "i.tif", 1, *values.shape)


def test_float_image_scales_0_1_to_0_255(tmp_path):
    values = np.tile(np.linspace(0, 1, 511, dtype=np.float32), (3, 1))
    Image.fromarray(values).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    grey = decode(tmp_path / "f.tif", 1, *values.shape)[0]  # the old code gave only 0 and 1
    np.testing.assert_array_equal(grey, np.floor(values.astype(np.float64) * 255 + 0.5).astype(np.uint8))
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) == 256


@pytest.mark.parametrize("bad, found", [(1.5, "values from 0 to 1.5"), (np.nan, "values from 0 to 1 and NaN")])
def test_float_image_outside_0_1_is_refused(tmp_path, bad, found):
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    values[1, 1] = bad
    Image.fromarray(values).save(tmp_path / "f.tif")
    with pytest.raises(
        PodiumError,
        match=rf"f\.tif is a floating-point image \(Pillow mode F\) with {found}, "
        rf"outside the range \[0, 1\]",
    ):
        decode(tmp_path / "f.tif", 1, 8, 8)


def test_one_bit_image_gives_0_and_255(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(decode(tmp_path / "b.png", 1, 2, 3)[0], bits * np.uint8(255))


def test_resize_comes_after_scaling_to_8bit(tmp_path):
    values = gradient16(8, 16)
    Image.fromarray(values).save(tmp_path / "g.png")
    want = np.asarray(Image.fromarray(expected8(values)).resize((8, 4), Image.BILINEAR))
    np.testing.assert_array_equal(decode(tmp_path / "g.png", 1, 4, 8, resize=True)[0], want)


# ---------------------------------------------------------------- alpha and palettes


def test_rgba_composites_over_black(tmp_path):
    # one red pixel each: transparent, half transparent, opaque. The old code dropped alpha: red, red, red.
    Image.fromarray(np.array([[[200, 100, 50, 0], [200, 100, 50, 128], [200, 100, 50, 255]]], np.uint8)).save(
        tmp_path / "a.png"
    )
    rgb = decode(tmp_path / "a.png", 3, 1, 3)
    np.testing.assert_array_equal(rgb[:, 0].T, [[0, 0, 0], [100, 50, 25], [200, 100, 50]])
    grey = decode(tmp_path / "a.png", 1, 1, 3)[0, 0]
    np.testing.assert_array_equal(grey, np.asarray(Image.fromarray(rgb[:, 0].T[None]).convert("L"))[0])


def test_la_composites_over_black(tmp_path):
    Image.fromarray(np.array([[[200, 0], [200, 128], [200, 255]]], np.uint8), mode="LA").save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "LA"
    np.testing.assert_array_equal(decode(tmp_path / "a.png", 1, 1, 3)[0, 0], [0, 100, 200])
    np.testing.assert_array_equal(decode(tmp_path / "a.png", 3, 1, 3)[:, 0].T, [[0] * 3, [100] * 3, [200] * 3])


def palette_image(transparency) -> Image.Image:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])  # red, green, blue
    img.putdata([0, 1, 2])
    img.info["transparency"] = transparency
    return img


def test_palette_with_transparent_index_is_expanded_and_black_there(tmp_path):
    palette_image(1).save(tmp_path / "p.png")  # green is the transparent entry
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(decode(tmp_path / "p.png", 3, 1, 3)[:, 0].T, [[255, 0, 0], [0, 0, 0], [0, 0, 255]])
    # RGB -> grey is ITU-R 601 luma: red 76, blue 29
    np.testing.assert_array_equal(decode(tmp_path / "p.png", 1, 1, 3)[0, 0], [76, 0, 29])


def test_palette_with_alpha_per_entry(tmp_path):
    palette_image(bytes([0, 128, 255])).save(tmp_path / "p.png")
    np.testing.assert_array_equal(decode(tmp_path / "p.png", 3, 1, 3)[:, 0].T, [[0, 0, 0], [0, 128, 0], [0, 0, 255]])


def test_grey_png_with_transparent_value(tmp_path):
    Image.fromarray(np.array([[10, 20, 30]], np.uint8)).save(tmp_path / "t.png", transparency=20)
    np.testing.assert_array_equal(decode(tmp_path / "t.png", 1, 1, 3)[0, 0], [10, 0, 30])


# ---------------------------------------------------------------- colour spaces and grey <-> RGB


def test_rgb_to_grey_is_601_luma_and_grey_to_rgb_replicates(tmp_path):
    Image.fromarray(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)).save(
        tmp_path / "c.png"
    )
    np.testing.assert_array_equal(decode(tmp_path / "c.png", 1, 1, 4)[0, 0], [76, 150, 29, 255])
    Image.fromarray(np.array([[0, 7, 255]], np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(decode(tmp_path / "g.png", 3, 1, 3), np.broadcast_to([[0, 7, 255]], (3, 1, 3)))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    inks = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0)]
    img = Image.new("CMYK", (16 * len(inks), 16))
    for n, ink in enumerate(inks):
        img.paste(ink, (16 * n, 0, 16 * n + 16, 16))
    img.save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    rgb = decode(tmp_path / "c.jpg", 3, 16, 16 * len(inks))
    centres = rgb[:, 8, 8::16].T.astype(int)  # one pixel from the middle of each block (JPEG blurs the edges)
    want = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0), (255, 255, 255)]
    assert np.abs(centres - want).max() <= 3, centres


def test_lab_tiff_becomes_rgb(tmp_path):
    colours = np.array([[[200, 50, 10], [20, 120, 220], [128, 128, 128]]], np.uint8)
    Image.fromarray(colours).convert("LAB").save(tmp_path / "l.tif")
    assert Image.open(tmp_path / "l.tif").mode == "LAB"
    rgb = decode(tmp_path / "l.tif", 3, 1, 3)[:, 0].T
    assert np.abs(rgb.astype(int) - colours[0]).max() <= 6, rgb  # 8-bit LAB itself is a few levels coarse
    # grey goes through RGB (the old code crashed: Pillow has no LAB -> L)
    luma = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[None])).convert("L"))[0]
    np.testing.assert_array_equal(decode(tmp_path / "l.tif", 1, 1, 3)[0, 0], luma)


# ---------------------------------------------------------------- EXIF orientation


def arrow(height: int = 16, width: int = 32) -> np.ndarray:
    """A grey picture with no symmetry, in 8x8 blocks of flat colour (so JPEG keeps it nearly exact)."""
    blocks = np.arange((height // 8) * (width // 8), dtype=np.uint8).reshape(height // 8, width // 8) * 30
    return np.kron(blocks, np.ones((8, 8), np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    stored = arrow()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the stored picture must be turned 90 degrees clockwise to be seen upright
    Image.fromarray(stored).save(tmp_path / f"o{suffix}", exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    grey = decode(tmp_path / f"o{suffix}", 1, 32, 16)[0]  # the old code kept it 16x32 and refused the size
    upright = np.rot90(stored, k=-1)
    assert np.abs(grey.astype(int) - upright).max() <= 2


# ---------------------------------------------------------------- files Pillow refuses


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(
        PodiumError,
        match=r"Corrupt or unreadable image .*e\.png: it is empty \(0 bytes\)\. "
        r"Replace the file or remove its row\.",
    ):
        decode(tmp_path / "e.png", 1, 28, 28)


def test_text_file_named_png(tmp_path):
    (tmp_path / "t.png").write_text("id,label\n1,cat\n")
    with pytest.raises(PodiumError, match=r"Corrupt or unreadable image .*t\.png: it is not an image Pillow can read"):
        decode(tmp_path / "t.png", 1, 28, 28)


def test_truncated_png(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / "c.png")
    data = (tmp_path / "c.png").read_bytes()
    (tmp_path / "c.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(PodiumError, match=r"Corrupt or unreadable image .*c\.png: .*truncated"):
        decode(tmp_path / "c.png", 1, 28, 28)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny grey PNG whose header claims width x height pixels: a decompression bomb to Pillow,
    which judges the size from the header before reading any pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_declaring(20_000, 10_000))  # 200,000,000 pixels, 64 bytes on disk
    with pytest.raises(
        PodiumError,
        match=r"bomb\.png declares 200,000,000 pixels, more than Pillow decodes "
        r"\(178,956,970 pixels, twice PIL\.Image\.MAX_IMAGE_PIXELS\).*shrink the file",
    ):
        decode(tmp_path / "bomb.png", 1, 28, 28, resize=True)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's limit is left as it was


def test_images_over_the_warning_limit_decode_with_one_log_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # warn above 100 pixels, refuse above 200
    for n, side in enumerate((11, 12, 13)):  # 121, 144 and 169 pixels: three different Pillow warnings
        Image.fromarray(np.full((side, side), 40 * n, np.uint8)).save(tmp_path / f"{n}.png")
    image = OmegaConf.create({"height": 8, "width": 8, "channels": 1, "resize": True})
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, "pipeline.data.images"):
        warnings.simplefilter("always")
        decoded = decode_images(["0", "1", "2"], tmp_path, ".png", image)
    assert [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)] == []
    assert [r.getMessage() for r in caplog.records] == [
        f"3 of the images exceed Pillow's decompression-bomb warning limit of 100 pixels (PIL.Image.MAX_IMAGE_PIXELS), "
        f"e.g. {tmp_path / '0.png'} (11x11 = 121 pixels); decoded anyway. Shrinking them to the competition's image "
        f"size would make decoding faster."
    ]
    np.testing.assert_array_equal(decoded[:, 0, 0, 0], [0, 40, 80])
    Image.fromarray(np.zeros((15, 15), np.uint8)).save(tmp_path / "3.png")  # 225 pixels
    with pytest.raises(PodiumError, match=r"3\.png declares 225 pixels, more than Pillow decodes \(200 pixels"):
        decode_images(["3"], tmp_path, ".png", image)
