"""Bad raw files get a one-paragraph error naming the file, the field and the fix; nothing is written."""

import pandas as pd
import pytest

from pipeline.errors import PodiumError
from pipeline.io import prepared_dir
from pipeline.prepare import prepare


def raw(project):
    return project / "data" / "animals" / "raw"


def edit_csv(path, change):
    frame = pd.read_csv(path, dtype={"id": str})
    change(frame).to_csv(path, index=False)


def drop_first_image(folder):
    first = pd.read_csv(folder / "train.csv", dtype={"id": str})["id"][0]
    (folder / "images" / f"{first}.png").unlink()


def corrupt_first_image(folder):
    first = pd.read_csv(folder / "train.csv", dtype={"id": str})["id"][0]
    (folder / "images" / f"{first}.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")


def set_cell(column, value, row=3):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return change


CASES = {
    "missing train.csv": (lambda f: (f / "train.csv").unlink(), r"Missing training file: .*train\.csv does not exist"),
    "missing id column": (lambda f: edit_csv(f / "train.csv", lambda d: d.rename(columns={"id": "ident"})),
                          r"train\.csv has no column 'id' \(it has: ident, label\)"),
    "missing target column": (lambda f: edit_csv(f / "train.csv", lambda d: d.drop(columns=["label"])),
                              r"train\.csv has no column 'label'"),
    "NaN label": (lambda f: edit_csv(f / "train.csv", set_cell("label", None)),
                  r"train\.csv: target column 'label' is empty \(NaN\) on 1 row\(s\), first on line\(s\) \[5\]"),
    "unknown label": (lambda f: edit_csv(f / "train.csv", set_cell("label", "unicorn")),
                      r"label\(s\) \['unicorn'\] that are not among the competition's classes"),
    "duplicate ids": (lambda f: edit_csv(f / "train.csv", lambda d: pd.concat([d, d.head(2)])),
                      r"train\.csv: column 'id' has 2 duplicated id\(s\)"),
    "test id absent from sample": (lambda f: edit_csv(f / "sample_submission.csv", lambda d: d.iloc[1:]),
                                   r"1 test id\(s\) are absent from .*sample_submission\.csv"),
    "sample with wrong columns": (lambda f: edit_csv(f / "sample_submission.csv", lambda d: d.rename(columns={"label": "animal"})),
                                  r"sample_submission\.csv has columns \['id', 'animal'\] but .* expects \['id', 'label'\]"),
    "missing image": (drop_first_image, r"1 image\(s\) missing from .*images, e\.g\. \['\d+\.png'\]"),
    "corrupt image": (corrupt_first_image, r"Corrupt or unreadable image .*\.png"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_and_nothing_is_written(project, make_cfg, case):
    breaks, expected = CASES[case]
    breaks(raw(project))
    cfg = make_cfg("tracking=none")
    with pytest.raises(PodiumError, match=expected):
        prepare(cfg)
    out = prepared_dir(cfg)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temporary leftovers either


def test_missing_raw_folder_says_where_files_go(project, make_cfg):
    import shutil

    shutil.rmtree(raw(project))
    with pytest.raises(PodiumError, match=r"Put the competition's files in .*data/animals/raw/"):
        prepare(make_cfg("tracking=none"))


def test_good_input_prepares_folds_and_images(project, make_cfg):
    cfg = make_cfg("tracking=none", "data.limit_train_rows=500")
    result = prepare(cfg)
    train = pd.read_parquet(result.folder / "train.parquet")
    assert len(train) == 500 and train["id"].is_unique and set(train["fold"]) == set(range(5))
    import numpy as np

    images = np.load(result.folder / "train_images.npy")
    assert images.shape == (500, 1, 28, 28) and images.dtype == np.uint8
    assert (result.folder / "config.yaml").is_file() and "root" not in (result.folder / "config.yaml").read_text()
    assert not list(result.folder.parent.glob(".*"))  # no temporary folders left behind
