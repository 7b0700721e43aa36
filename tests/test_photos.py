"""Images at photo scale: both data paths (cache, stream), the fit policies, the disk cache, per-image augmentation.

The integration tests train on a generated competition of photo-like files (competitions/animal-photos/build.py:
300-900 px, RGB and grey JPEG, PNG and WebP under .jpg names, some turned by EXIF), shrunk to a few hundred rows.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, podium, project_with
from omegaconf import OmegaConf
from PIL import Image

from pipeline.data.image_fit import fit_image, shrink_to_side
from pipeline.data.image_store import ImageReader, check_files, choose_store
from pipeline.errors import PodiumError
from pipeline.training.image_data import AlbumentationsItems, ImageArrayDataset

IMAGE = OmegaConf.create({"channels": 3, "height": 32, "width": 32, "resize": True, "fit": "resize", "store": "auto"})


# -- fit policies, store choice, disk cache, items: no training ---------------------------------------------------


def stripes(width: int, height: int) -> Image.Image:
    """A grey image whose left third is 50, middle third 150, right third 250."""
    pixels = np.full((height, width), 150, dtype=np.uint8)
    pixels[:, : width // 3], pixels[:, 2 * width // 3 :] = 50, 250
    return Image.fromarray(pixels)


@pytest.mark.fast
def test_center_crop_keeps_the_middle_and_letterbox_pads_with_black():
    wide = stripes(300, 100)
    crop = np.asarray(fit_image(wide, 60, 60, "center_crop"))
    assert crop.shape == (60, 60) and abs(int(crop.mean()) - 150) <= 2  # only the middle third survives
    box = np.asarray(fit_image(wide, 60, 60, "letterbox"))
    assert (box[:20] == 0).all() and (box[-20:] == 0).all()  # 300x100 fits as 60x20, padded above and below
    assert abs(int(box[20:40, :18].mean()) - 50) <= 3 and abs(int(box[20:40, -18:].mean()) - 250) <= 3
    stretched = np.asarray(fit_image(wide, 60, 60, "resize"))
    assert abs(int(stretched[:, :18].mean()) - 50) <= 3 and abs(int(stretched[:, -18:].mean()) - 250) <= 3
    assert fit_image(wide, 300, 100, "letterbox") is wide  # already the size: untouched
    assert shrink_to_side(wide, 150).size == (150, 50) and shrink_to_side(wide, 400) is wide


@pytest.mark.fast
def test_auto_store_caches_what_fits_the_budget_and_streams_the_rest():
    data = OmegaConf.create({"image_memory_gb": 1.0})
    fits = 2**30 // (3 * 32 * 32)
    assert choose_store(IMAGE, data, fits)[0] == "cache"
    store, why = choose_store(IMAGE, data, fits + 1)
    assert store == "stream" and "more than the 1.0 GB budget (data.image_memory_gb)" in why
    assert choose_store(OmegaConf.merge(IMAGE, {"store": "stream"}), data, 10)[0] == "stream"  # stated: it wins


@pytest.mark.fast
def test_the_disk_cache_keeps_a_shrunk_copy_and_a_changed_file_gets_a_new_entry(tmp_path):
    path = tmp_path / "a.jpg"
    stripes(900, 300).convert("RGB").save(path, quality=95)
    reader = ImageReader(image=OmegaConf.to_container(IMAGE), cache=tmp_path / "cache", side=90)
    first = reader.read(path)
    entries = list((tmp_path / "cache").glob("*.jpg"))
    assert first.size == (90, 30) and first.mode == "RGB" and len(entries) == 1
    again = reader.read(path)  # read back from the entry: the JPEG of quality 95, within a few levels
    assert again.size == (90, 30) and np.abs(np.asarray(again, int) - np.asarray(first, int)).max() <= 8
    assert np.array_equal(np.asarray(again), np.asarray(Image.open(entries[0])))
    stripes(600, 600).convert("RGB").save(path, quality=95)  # a fixed file: new size and time, new key
    assert reader.read(path).size == (90, 90) and len(list((tmp_path / "cache").glob("*.jpg"))) == 2
    small = tmp_path / "small.png"
    stripes(80, 40).save(small)  # within the side: a marker, and the file itself is read, losslessly
    assert np.array_equal(np.asarray(reader.read(small)), np.asarray(reader.direct(small)))
    assert len(list((tmp_path / "cache").glob("*.same"))) == 1 and np.asarray(reader.read(small)).shape == (40, 80, 3)
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left


@pytest.mark.fast
def test_a_bad_file_leaves_the_disk_cache_as_it_was(tmp_path):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    stripes(200, 100).convert("RGB").save(good)
    bad.write_bytes(good.read_bytes()[:300])  # a truncated JPEG
    reader = ImageReader(image=OmegaConf.to_container(IMAGE), cache=tmp_path / "cache", side=64)
    with pytest.raises(PodiumError, match=r"Corrupt or unreadable image .*bad\.jpg: it is truncated"):
        check_files([good, bad], reader, "images", [])
    assert not any((tmp_path / "cache").rglob("*"))  # the good file's entry was staged, then dropped
    seen: list = []
    check_files([good], reader, "images", seen)
    assert seen == [(200, 100, "RGB")] and len(list((tmp_path / "cache").glob("*.jpg"))) == 1


@pytest.mark.fast
def test_items_must_end_at_one_size_and_repeat_under_the_same_seed():
    import torch

    crop = {"_target_": "albumentations.RandomResizedCrop", "size": [24, 24], "scale": [0.3, 1.0]}
    items = AlbumentationsItems([crop, {"_target_": "albumentations.HorizontalFlip"}], IMAGE)
    photo = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    torch.manual_seed(7)
    first = items(photo)
    torch.manual_seed(7)
    assert first.shape == (24, 24, 3) and np.array_equal(items(photo), first)
    with pytest.raises(PodiumError, match=r"augment\.items turn images of different sizes .*RandomResizedCrop"):
        AlbumentationsItems([{"_target_": "albumentations.HorizontalFlip"}], IMAGE)
    with pytest.raises(PodiumError, match=r"augment\.items\[0\] \(albumentations\.NoSuchCrop\)"):
        AlbumentationsItems([{"_target_": "albumentations.NoSuchCrop"}], IMAGE)


@pytest.mark.fast
def test_a_memory_mapped_dataset_pickles_as_its_file_not_its_pixels(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (500, 3, 32, 32), dtype=np.uint8)
    np.save(tmp_path / "images.npy", array)
    dataset = ImageArrayDataset(np.load(tmp_path / "images.npy", mmap_mode="r"), np.arange(3), rows=[7, 0, 499])
    sent = pickle.dumps(dataset)
    assert len(sent) < 10_000 < array.nbytes  # a spawned worker reopens the map: no copy of the 1.5 MB array
    again = pickle.loads(sent)
    assert np.array_equal(again[2][0].numpy(), array[499]) and int(again[2][1]) == 2


# -- both paths on generated photos ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos_data(tmp_path_factory, animals_data):
    folder = tmp_path_factory.mktemp("photos") / "animal-photos"
    build = REPO / "competitions/animal-photos/build.py"
    subprocess.run(
        [sys.executable, str(build), "--source", str(animals_data), "--out", str(folder), "--rows", "220"],
        check=True,
        capture_output=True,
    )
    return folder


def photos_project(root, photos_data):
    project_with(root, photos_data)
    shutil.copy(REPO / "competitions/animal-photos/animal-photos.yaml", root / "conf/competition")
    return root


SMALL = (
    "competition=animal-photos",
    "trainer=smoke",
    "tracking.uri=sqlite:///mlflow.db",
    "competition.image.height=32",
    "competition.image.width=32",
    "model=cnn",
    "model.width=8",
)


def test_stream_and_cache_predict_the_same_and_stream_submits(tmp_path, photos_data):
    """Without augmentation both paths feed the same pixels: the same out-of-fold and test predictions, the disk
    cache on (its 64-px copies serve augmented reads only). Streamed, the pipeline runs to a valid submission,
    and `podium predict` on the test rows reproduces it."""
    root = photos_project(tmp_path, photos_data)
    plain = (*SMALL, "augment=none", "tta=none", "data.image_cache_side=64")
    folders = {}
    for store in ("cache", "stream"):
        out = f"outputs/animal-photos/models/{store}"
        code, printed = podium(root, "train", *plain, f"competition.image.store={store}", f"out_dir={out}")
        assert code == 0, printed
        folders[store] = root / out
    for name in ("oof.parquet", "test.parquet"):
        cache, stream = (pd.read_parquet(folders[s] / name) for s in ("cache", "stream"))
        assert list(cache["id"]) == list(stream["id"])
        pd.testing.assert_frame_equal(cache, stream)
    assert not (root / "outputs/animal-photos/prepared/train_images.npy").exists()  # the last prepare streamed

    steps = [
        ("ensemble", "ensemble.members=[stream]", "out_dir=outputs/animal-photos/ensemble"),
        ("submit", "out_dir=outputs/animal-photos/submission"),
    ]
    for command, *overrides in steps:
        code, printed = podium(root, command, *plain, "competition.image.store=stream", *overrides)
        assert code == 0, printed
    submission = root / "submissions/animal-photos/submission.csv"
    test_ids = pd.read_csv(root / "data/animal-photos/raw/test.csv", dtype=str)["id"]
    assert list(pd.read_csv(submission, dtype=str)["id"]) == list(test_ids)
    again = tmp_path / "again.csv"
    code, printed = podium(
        root, "predict", "--test", str(root / "data/animal-photos/raw/test.csv"), "--out", str(again), *plain[:1]
    )
    assert code == 0, printed
    assert again.read_bytes() == submission.read_bytes()


def test_streamed_photos_train_with_augmentation_through_the_disk_cache(tmp_path, photos_data):
    root = photos_project(tmp_path, photos_data)
    args = (*SMALL, "competition.image.store=stream", "data.image_cache_side=64", "data.num_workers=1")
    code, printed = podium(root, "train", *args, "out_dir=outputs/animal-photos/models/cnn")  # augment=photo, tta=flip
    assert code == 0, printed
    entries = sorted((root / "cache/images").glob("*.jpg"))
    assert len(entries) == 220 and not list((root / "cache/images").glob(".*"))
    assert all(max(Image.open(e).size) == 64 for e in entries[:20])  # every photo is over 64 px a side
    before = {e: e.stat().st_mtime_ns for e in entries}
    code, printed = podium(root, "train", *args, "seed=1", "out_dir=outputs/animal-photos/models/again")
    assert code == 0, printed
    assert {e: e.stat().st_mtime_ns for e in sorted((root / "cache/images").glob("*.jpg"))} == before  # reused
    oof = pd.read_parquet(root / "outputs/animal-photos/models/cnn/oof.parquet")
    assert oof["id"].is_unique and len(oof) == len(pd.read_csv(root / "data/animal-photos/raw/train.csv"))


@pytest.mark.fast
def test_without_resize_a_large_jpeg_is_refused_at_its_own_size_not_decoded_smaller(tmp_path):
    """libjpeg's scaled decoding is for images being resized: a 224x224 JPEG never passes as 28x28."""
    from pipeline.data.images import decode_images

    Image.fromarray(np.full((224, 224), 90, dtype=np.uint8)).save(tmp_path / "a.jpg")
    grey = OmegaConf.create({"channels": 1, "height": 28, "width": 28, "resize": False, "fit": "resize"})
    with pytest.raises(PodiumError, match=r"a\.jpg is 224x224 pixels but competition\.image is 28x28"):
        decode_images(["a"], tmp_path, ".jpg", grey)
    seen: list = []
    out = decode_images(["a"], tmp_path, ".jpg", OmegaConf.merge(grey, {"resize": True}), seen=seen)
    assert out.shape == (1, 1, 28, 28) and seen == [(224, 224, "L")]  # the profile has the file's size, undrafted


@pytest.mark.fast
def test_an_input_larger_than_the_disk_cache_needs_no_cache_side_when_cached(shared_images_project):
    from conftest import config_maker

    make = config_maker(shared_images_project)
    big = ("competition.image.height=600", "competition.image.width=600", "competition.image.resize=true")
    make(*big, "competition.image.store=cache")  # the disk cache serves streamed images only
    with pytest.raises(PodiumError, match=r"data\.image_cache_side=512 is out of range; .*at least .* 600"):
        make(*big, "competition.image.store=stream")


@pytest.mark.fast
def test_a_cached_file_is_still_checked_against_the_size_when_resize_is_turned_off(tmp_path):
    photo = tmp_path / "p.jpg"
    stripes(200, 100).convert("RGB").save(photo)
    resized = ImageReader(image=OmegaConf.to_container(IMAGE), cache=tmp_path / "cache", side=64)
    check_files([photo], resized, "images", [])  # fills the entry
    exact = ImageReader(image={**OmegaConf.to_container(IMAGE), "resize": False}, cache=tmp_path / "cache", side=64)
    assert exact.key(photo) == resized.key(photo)  # the same entry serves both
    with pytest.raises(PodiumError, match=r"p\.jpg is 200x100 pixels but competition\.image is 32x32"):
        check_files([photo], exact, "images", [])


@pytest.mark.fast
def test_center_crop_takes_every_size_floating_point_rounding_included():
    """A crop box computed in floats can land a hair outside the image (392x398 to 64x64: -1e-14), which
    Pillow refuses; every size of this range must crop."""
    for width in range(380, 400):
        for height in range(392, 420, 3):
            assert fit_image(Image.new("RGB", (width, height)), 64, 64, "center_crop").size == (64, 64)


@pytest.mark.fast
def test_items_are_probed_on_images_larger_than_the_input_and_their_errors_named():
    big = OmegaConf.merge(IMAGE, {"height": 128, "width": 128})
    crop = {
        "_target_": "albumentations.RandomCrop",
        "height": 120,
        "width": 120,
    }  # fits photos, not a small probe image
    assert AlbumentationsItems([crop], big).size == (120, 120)
    huge = {"_target_": "albumentations.RandomCrop", "height": 1000, "width": 1000}
    with pytest.raises(PodiumError, match=r"augment\.items fail on a 259x385 image \(CropSizeError"):
        AlbumentationsItems([huge], big)


@pytest.mark.fast
def test_a_damaged_cache_entry_is_decoded_again(tmp_path):
    photo = tmp_path / "p.jpg"
    stripes(300, 100).convert("RGB").save(photo)
    reader = ImageReader(image=OmegaConf.to_container(IMAGE), cache=tmp_path / "cache", side=64)
    first = np.asarray(reader.read(photo))
    entry = tmp_path / "cache" / f"{reader.key(photo)}.jpg"
    entry.write_bytes(b"\xff\xd8 not a whole jpeg")  # e.g. a disk that filled up under another tool
    assert np.array_equal(np.asarray(reader.read(photo)), first)  # decoded from the file again
    again = np.asarray(Image.open(entry))  # and written anew: the JPEG of quality 95, within a few levels
    assert again.shape == first.shape and np.abs(again.astype(int) - first).max() <= 8


@pytest.mark.fast
def test_the_streamed_identity_follows_what_shapes_the_pixels_not_how_the_path_was_chosen():
    from pipeline.data.image_store import streamed_identity

    def identity(side=512, **image):
        cfg = OmegaConf.create({"competition": {"image": {**IMAGE, **image}}, "data": {"image_cache_side": side}})
        return streamed_identity(cfg, {"store": "stream"}, "files-digest")

    assert identity(store="auto") == identity(store="stream")
    assert identity(side=256) != identity() and identity(fit="letterbox") != identity()
    assert streamed_identity(OmegaConf.create({}), {"store": "cache"}, "files-digest") is None


@pytest.mark.fast
def test_prepare_removes_the_staging_folders_of_killed_runs(tmp_path):
    photo = tmp_path / "p.jpg"
    stripes(300, 100).convert("RGB").save(photo)
    abandoned = tmp_path / "cache" / ".staging-999999999"  # no such process
    (abandoned / "x").mkdir(parents=True)
    reader = ImageReader(image=OmegaConf.to_container(IMAGE), cache=tmp_path / "cache", side=64)
    check_files([photo], reader, "images", [])
    assert not abandoned.exists() and len(list((tmp_path / "cache").glob("*.jpg"))) == 1
