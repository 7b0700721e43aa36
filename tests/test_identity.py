"""Cache keys hold the data's identity: a hand run never trains on stale pixels, and fold results
are recorded with the prepared data they were computed from."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import own_file

from pipeline.data.identity import files_digest
from pipeline.prepare import load_prepared, prepare, prepare_key


def test_replacing_an_image_changes_the_prepared_key_and_the_pixels_trained_on(project, make_cfg, tmp_path):
    from PIL import Image

    cfg = make_cfg("tracking=none", "data.limit_train_rows=300")
    prepare(cfg)
    key, first = prepare_key(cfg), load_prepared(cfg, tmp_path / "scratch")
    assert first.folder.name == "prepared"  # the pipeline's own prepared data matched
    image_id = first.train["id"].iloc[0]
    path = project / "data/animals/raw/images" / f"{image_id}.png"
    Image.fromarray(255 - np.asarray(Image.open(path))).save(own_file(path))  # same name and pixel size, other pixels
    assert prepare_key(cfg) != key
    second = load_prepared(cfg, tmp_path / "scratch")
    assert second.folder == tmp_path / "scratch" and second.identity != first.identity
    row = int(np.flatnonzero(second.train["id"].to_numpy() == image_id)[0])
    assert (second.train_images[row] == 255 - first.train_images[0]).all()


def test_files_digest_reuses_hashes_of_unchanged_files_and_rereads_changed_ones(tmp_path):
    files = [tmp_path / f"{n}.bin" for n in range(3)]
    for n, f in enumerate(files):
        f.write_bytes(bytes([n]) * 10)
    cache = tmp_path / "cache.json"
    before = files_digest(files, cache)
    assert files_digest(files, cache) == before and cache.is_file()
    files[1].write_bytes(b"\x09" * 11)
    assert files_digest(files, cache) != before
    files[1].write_bytes(b"\x01" * 10)
    assert files_digest(files, cache) == before


def test_prepared_meta_records_the_data_identity(project, make_cfg):
    result = prepare(make_cfg("tracking=none", "data.limit_train_rows=300"))
    meta = pd.read_json(result.folder / "meta.json", typ="series")
    assert len(meta["data"]) == 16
