"""Build the `animal-photos` competition: the animals data as photo-like files of every size and kind (offline).

    python competitions/animals/build.py                 # first: data/animals/, the source
    python competitions/animal-photos/build.py           # writes data/animal-photos/raw/ and private/
    python competitions/animal-photos/build.py --rows 2000 --out data/photos-2k   # the first 2,000 ids only

The competition config is animal-photos.yaml beside this script (copy it to conf/competition/).

Each 28x28 silhouette becomes a photo of its own size, 300 to 900 pixels a side: upscaled (bicubic),
coloured (a random background gradient, the animal in another random colour), with grain and a
little blur. Most are RGB JPEGs (quality 90); one in ten is a grey JPEG, one in twenty a PNG and
one in twenty a WebP, all named <id>.jpg (a competition's files are often not what their suffix
says; Pillow reads by content). One JPEG in eight is stored turned on its side with an EXIF
Orientation tag saying how to turn it upright, as phones do. The ids, labels and train/test split
are the animals competition's; the seed is fixed, so a build is the same every time.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 2026
# EXIF Orientation values and the transpose that stores an upright image so that a viewer applying the tag
# shows it upright again (6: the viewer turns it 90 degrees clockwise, so it is stored turned the other way)
STORED_TURNED = {6: "ROTATE_90", 8: "ROTATE_270", 3: "ROTATE_180"}


def photo(silhouette: np.ndarray, rng: np.random.Generator):
    """One photo-like RGB Pillow image of a 28x28 grey silhouette (dark animal on white)."""
    from PIL import Image, ImageFilter

    width, height = (int(v) for v in rng.integers(300, 901, size=2))
    shape = np.asarray(Image.fromarray(silhouette).resize((width, height), Image.BICUBIC), dtype=np.float32)[..., None]
    shape /= 255
    top, bottom, animal = (rng.uniform(0, 255, 3).astype(np.float32) for _ in range(3))
    mix = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    background = top * (1 - mix) + bottom * mix  # (height, 1, 3): a vertical gradient
    # the silhouette's white is the background, its dark parts the animal (zebras keep their grey stripes)
    pixels = shape * background + (1 - shape) * (animal * (0.6 + 0.4 * shape))
    pixels += rng.integers(-8, 9, (height, width, 1), dtype=np.int16)  # grain
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.BoxBlur(1))


def save(img, path: Path, kind: str, rng: np.random.Generator) -> None:
    """Write `img` as `kind` (jpeg, grey, png, webp) at `path`; some JPEGs stored turned, with an EXIF tag."""
    from PIL import Image

    if kind == "png":
        img.save(path, format="PNG")
    elif kind == "webp":
        img.save(path, format="WEBP", quality=90)
    else:
        img = img.convert("L") if kind == "grey" else img
        exif = Image.Exif()
        if rng.random() < 1 / 8:
            orientation = int(rng.choice(list(STORED_TURNED)))
            img = img.transpose(getattr(Image.Transpose, STORED_TURNED[orientation]))
            exif[0x0112] = orientation
        img.save(path, format="JPEG", quality=90, exif=exif.tobytes())


def build(source: Path, out: Path, rows: int | None) -> None:
    from PIL import Image

    rng = np.random.default_rng(SEED)
    tables = {name: pd.read_csv(source / "raw" / f"{name}.csv", dtype={"id": str}) for name in ("train", "test")}
    solution = pd.read_csv(source / "private" / "solution.csv", dtype={"id": str})
    if rows is not None:  # keep the first `rows` ids of the whole set, train and test in their share
        kept = set(sorted(pd.concat([tables["train"].id, tables["test"].id]))[:rows])
        tables = {name: frame[frame.id.isin(kept)] for name, frame in tables.items()}
        solution = solution[solution.id.isin(kept)]
    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw" / "images").mkdir(parents=True)
    (tmp / "private").mkdir()
    ids = sorted(pd.concat([tables["train"].id, tables["test"].id]))
    kinds = rng.choice(["jpeg", "grey", "png", "webp"], size=len(ids), p=[0.8, 0.1, 0.05, 0.05])
    for n, (image_id, kind) in enumerate(zip(ids, kinds)):
        with Image.open(source / "raw" / "images" / f"{image_id}.png") as small:
            silhouette = np.asarray(small.convert("L"))
        save(photo(silhouette, rng), tmp / "raw" / "images" / f"{image_id}.jpg", kind, rng)
        if (n + 1) % 1000 == 0:
            print(f"  {n + 1:,} of {len(ids):,} photos", flush=True)
    tables["train"].to_csv(tmp / "raw" / "train.csv", index=False)
    tables["test"].to_csv(tmp / "raw" / "test.csv", index=False)
    sample = tables["test"][["id"]].assign(label=sorted(set(solution.label))[0])
    sample.to_csv(tmp / "raw" / "sample_submission.csv", index=False)
    solution.to_csv(tmp / "private" / "solution.csv", index=False)
    out.mkdir(parents=True, exist_ok=True)
    for part in ("raw", "private"):  # swap the finished folders in: an interrupted build leaves no partial set
        shutil.rmtree(out / part, ignore_errors=True)
        (tmp / part).rename(out / part)
    shutil.rmtree(tmp)
    print(f"animal-photos: {len(tables['train'])} train, {len(tables['test'])} test photos -> {out / 'raw'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("data/animals"), help="the animals competition's data")
    parser.add_argument("--out", type=Path, default=Path("data/animal-photos"), help="competition data folder")
    parser.add_argument("--rows", type=int, default=None, help="keep only the first ROWS ids (train and test)")
    args = parser.parse_args()
    build(args.source, args.out, args.rows)
