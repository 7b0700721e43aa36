"""The bad-input catalogue: every case through the real command line, on the real demo projects.

Each case breaks one thing (a raw file, an override, a submission) and runs the `podium` command a
user would run. Each must end with exit code 2 and one paragraph on stderr that names the file or
key and the fix, with no traceback, and must leave the project exactly as it was (nothing written,
no temporary files). docs/bad-input.md is this catalogue as a table; a test keeps the two in step:
    python tests/test_bad_input.py > docs/bad-input.md
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import own_file

from pipeline import cli

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    area: str  # raw data | config | user code | submission | predict
    what: str
    command: list[str]  # podium arguments, after the competition is chosen
    expect: str  # a regular expression the message must match
    competition: str = "animals"
    breaks: Callable[[Path], None] | None = None  # edits the project (its root) before the command


# -- how cases break things ----------------------------------------------------------------------------


def raw(root: Path, competition: str = "animals") -> Path:
    return root / "data" / competition / "raw"


def edit_csv(file: str, change, competition: str = "animals"):
    def breaks(root):
        path = raw(root, competition) / file
        change(pd.read_csv(path, dtype={"id": str})).to_csv(path, index=False)

    return breaks


def set_cell(column, value, row=3):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return change


def first_image(root: Path) -> Path:
    first = pd.read_csv(raw(root) / "train.csv", dtype={"id": str})["id"][0]
    return raw(root) / "images" / f"{first}.png"


def write_image(size):
    def breaks(root):
        from PIL import Image

        Image.fromarray(np.zeros(size[::-1], dtype=np.uint8)).save(own_file(first_image(root)))

    return breaks


def truncated_jpeg(root: Path) -> None:
    """The first image replaced by a JPEG cut off after its first 300 bytes (Pillow reads by content, not name)."""
    import io

    from PIL import Image

    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)).save(whole, "JPEG")
    own_file(first_image(root)).write_bytes(whole.getvalue()[:300])


def link_outside(root: Path) -> None:
    """The first image a symlink to a file outside the image folder."""
    outside = root / "elsewhere.png"
    shutil.copy(first_image(root), outside)
    own_file(first_image(root)).symlink_to(outside)


def duplicate_label(frame):
    frame.insert(2, "label_copy", frame["label"])
    return frame.rename(columns={"label_copy": "label"})


def write_bytes(file: str, data: bytes, competition: str = "animals"):
    return lambda root: (raw(root, competition) / file).write_bytes(data)


def submission(change, competition: str = "animals"):
    """A submission file bad.csv: the solution (a perfect submission) changed by `change`."""

    def breaks(root):
        solution = pd.read_csv(root / "data" / competition / "private" / "solution.csv", dtype={"id": str})
        change(solution).to_csv(root / "bad.csv", index=False)

    return breaks


def edit_conf(file: str, old: str, new: str):
    """Replace `old` (which must occur) by `new` in the project's conf/<file>."""

    def breaks(root):
        path = root / "conf" / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1))

    return breaks


def declaring_png(width: int, height: int) -> bytes:
    """A 64-byte grey PNG whose header claims width x height pixels (Pillow judges size by the header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


SCORE = ["score", "--submission", "bad.csv"]


def solution_variant(root: Path, change) -> None:
    """good.csv: a perfect submission; part.csv: the solution changed by `change`."""
    solution = pd.read_csv(root / "data" / "animals" / "private" / "solution.csv", dtype=str, keep_default_na=False)
    solution.to_csv(root / "good.csv", index=False)
    change(solution).to_csv(root / "part.csv", index=False)


# -- the user's own code (family: network / estimator) -----------------------------------------------

USER_NET = """
import torch
from torch import nn


class Flat(nn.Module):
    def __init__(self, channels, height, width, n_outputs, hidden=8):
        super().__init__()
        self.layer = nn.Linear(channels * height * width, n_outputs)

    def forward(self, images):
        return self.layer(images.flatten(1))


class ExtraDim(Flat):
    def forward(self, images):
        return super().forward(images)[:, None, :]


class NaNs(Flat):
    def forward(self, images):
        return super().forward(images) * float("nan")


class Broken(Flat):
    def forward(self, images):
        return self.layer(images)  # not flattened: (4, 1, 28, 28) @ (784, 10)


def helper():
    return 1
"""


def user_model(net=None, code=USER_NET, prepare=False, family="network", competition="animals", optimizer=True):
    """conf/model/mine.yaml (its family and `net:` or `estimator:`), the module it names, and prepared data."""

    def breaks(root):
        import yaml

        key = "net" if family == "network" else "estimator"
        model = {"name": "mine", "family": family, key: net}
        if optimizer and family == "network":
            model["optimizer"] = {"_target_": "torch.optim.AdamW", "lr": 1e-3}
        (root / "conf/model/mine.yaml").write_text(yaml.safe_dump(model))
        if code is not None:
            (root / "competitions" / competition).mkdir(parents=True, exist_ok=True)
            (root / "competitions" / competition / "models.py").write_text(code)
        if prepare:  # the one-batch check runs after the data are read: prepared before the snapshot
            from pipeline.config import compose
            from pipeline.prepare import prepare as run_prepare

            run_prepare(compose([f"competition={competition}", "trainer=smoke", "tracking=none"], root=root))

    return breaks


NET = "competitions.animals.models"
USER = ["train", "model=mine", "trainer=smoke"]

TEXT = "rotten-tomatoes"
TABLE = "ames"

CASES = [
    # raw data: `podium prepare`
    Case(
        "raw data",
        "raw folder missing",
        ["prepare"],
        r"Put the competition's files in .*data/animals/raw/",
        breaks=lambda r: shutil.rmtree(raw(r)),
    ),
    Case(
        "raw data",
        "train.csv missing",
        ["prepare"],
        r"Missing training file: .*train\.csv does not exist",
        breaks=lambda r: (raw(r) / "train.csv").unlink(),
    ),
    Case(
        "raw data",
        "train.csv empty (0 bytes)",
        ["prepare"],
        r"training file .*train\.csv is empty\. It needs a header row",
        breaks=write_bytes("train.csv", b""),
    ),
    Case(
        "raw data",
        "id column missing",
        ["prepare"],
        r"train\.csv has no column 'id' \(competition\.id_column\) \(it has: ident, label\)\. .*set the "
        r"competition's id_column to one of its columns",
        breaks=edit_csv("train.csv", lambda d: d.rename(columns={"id": "ident"})),
    ),
    Case(
        "raw data",
        "target column missing",
        ["prepare"],
        r"train\.csv has no column 'label' \(competition\.target_column\)",
        breaks=edit_csv("train.csv", lambda d: d.drop(columns=["label"])),
    ),
    Case(
        "raw data",
        "NaN label",
        ["prepare"],
        r"train\.csv: target column 'label' is empty on 1 row\(s\), first on line\(s\) \[5\]",
        breaks=edit_csv("train.csv", set_cell("label", None)),
    ),
    Case(
        "raw data",
        "label outside the competition's classes",
        ["prepare"],
        r"label\(s\) \['unicorn'\] that are not among the competition's classes",
        breaks=edit_csv("train.csv", set_cell("label", "unicorn")),
    ),
    Case(
        "raw data",
        "duplicate ids",
        ["prepare"],
        r"train\.csv: column 'id' has 2 duplicated id\(s\)",
        breaks=edit_csv("train.csv", lambda d: pd.concat([d, d.head(2)])),
    ),
    Case(
        "raw data",
        "empty id",
        ["prepare"],
        r"test\.csv: column 'id' is empty on line\(s\) \[5\]",
        breaks=edit_csv("test.csv", set_cell("id", None)),
    ),
    Case(
        "raw data",
        "id escaping the image folder",
        ["prepare"],
        r"train\.csv: column 'id' has 1 id\(s\) that would name files outside .*images, e\.g\. \['\.\./\.\./x'\]",
        breaks=edit_csv("train.csv", set_cell("id", "../../x")),
    ),
    Case(
        "raw data",
        "test id absent from the sample submission",
        ["prepare"],
        r"1 test id\(s\) are absent from .*sample_submission\.csv",
        breaks=edit_csv("sample_submission.csv", lambda d: d.iloc[1:]),
    ),
    Case(
        "raw data",
        "sample submission with wrong columns",
        ["prepare"],
        r"sample_submission\.csv has columns \['id', 'animal'\] but .* expects \['id', 'label'\]",
        breaks=edit_csv("sample_submission.csv", lambda d: d.rename(columns={"label": "animal"})),
    ),
    Case(
        "raw data",
        "image missing",
        ["prepare"],
        r"1 image\(s\) missing from .*images, e\.g\. \['\d+\.png'\]",
        breaks=lambda r: first_image(r).unlink(),
    ),
    Case(
        "raw data",
        "corrupt image",
        ["prepare"],
        r"Corrupt or unreadable image .*\.png",
        breaks=lambda r: own_file(first_image(r)).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image"),
    ),
    Case(
        "raw data",
        "empty image file (0 bytes)",
        ["prepare"],
        r"Corrupt or unreadable image .*\.png: it is empty \(0 bytes\)",
        breaks=lambda r: own_file(first_image(r)).write_bytes(b""),
    ),
    Case(
        "raw data",
        "truncated JPEG",
        ["prepare"],
        r"Corrupt or unreadable image .*\.png: it is truncated \(the file ends before its image data do",
        breaks=truncated_jpeg,
    ),
    Case(
        "raw data",
        "a file that is not an image",
        ["prepare"],
        r"Corrupt or unreadable image .*\.png: it is not an image Pillow can read",
        breaks=lambda r: own_file(first_image(r)).write_text("id,label\n1,cat\n"),
    ),
    Case(
        "raw data",
        "an image symlink pointing outside the image folder",
        ["prepare"],
        r"1 image\(s\) in .*images are symlinks to files outside it, e\.g\. \d+\.png -> .*elsewhere\.png",
        breaks=link_outside,
    ),
    Case(
        "raw data",
        "corrupt image, streamed (checked by prepare, not mid-training)",
        ["prepare", "competition.image.store=stream"],
        r"Corrupt or unreadable image .*\.png",
        breaks=lambda r: own_file(first_image(r)).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image"),
    ),
    Case(
        "raw data",
        "image of the wrong size, streamed",
        ["prepare", "competition.image.store=stream"],
        r"Image .*\.png is 32x20 pixels but competition\.image is 28x28\. .*competition\.image\.resize=true",
        breaks=write_image((32, 20)),
    ),
    Case(
        "raw data",
        "decompression-bomb image",
        ["prepare", "competition.image.resize=true"],
        r"Image .*\.png declares 200,000,000 pixels, more than Pillow decodes .*shrink the file",
        breaks=lambda r: own_file(first_image(r)).write_bytes(declaring_png(20_000, 10_000)),
    ),
    Case(
        "raw data",
        "image of the wrong size",
        ["prepare"],
        r"Image .*\.png is 32x20 pixels but competition\.image is 28x28\. .*competition\.image\.resize=true",
        breaks=write_image((32, 20)),
    ),
    Case(
        "raw data",
        "duplicate column name (id,label,label)",
        ["prepare"],
        r"train\.csv: the header names column\(s\) \['label'\] more than once",
        breaks=edit_csv("train.csv", duplicate_label),
    ),
    Case(
        "raw data",
        "class listed but absent from train",
        ["prepare"],
        r"Class\(es\) \['zebra'\] of competition\.classes never occur .*competition\.allow_missing_classes=true",
        breaks=edit_csv("train.csv", lambda d: d.assign(label=d["label"].replace("zebra", "horse"))),
    ),
    Case(
        "raw data",
        "one class only",
        ["prepare"],
        r"Every training row of animals has the same class",
        breaks=edit_csv("train.csv", lambda d: d.assign(label="cat")),
    ),
    Case(
        "raw data",
        "limit_train_rows leaves a class of one row",
        ["prepare", "data.limit_train_rows=300"],
        r"data\.limit_train_rows=300 cannot keep every class .*each class needs at least 2 rows",
        breaks=edit_csv(
            "train.csv",
            lambda d: d.assign(label=d["label"].where(d["label"] != "zebra", "horse")).pipe(
                lambda f: f.assign(label=["zebra", *f["label"][1:]])
            ),
        ),
    ),
    Case(
        "raw data",
        "training refused at its data: no MLflow store or experiment created",
        ["train"],
        r"Class\(es\) \['zebra'\] of competition\.classes never occur",
        breaks=edit_csv("train.csv", lambda d: d.assign(label=d["label"].replace("zebra", "horse"))),
    ),
    Case(
        "raw data",
        "empty test set",
        ["prepare"],
        r"test\.csv has a header but no rows",
        breaks=lambda root: (raw(root) / "test.csv").write_text("id\n"),
    ),
    Case(
        "raw data",
        "empty group value",
        ["prepare"],
        r"train\.csv: group column 'movie' \(competition\.cv\.group_column\) is empty on 1 row\(s\)",
        TEXT,
        edit_csv("train.csv", set_cell("movie", ""), TEXT),
    ),
    Case(
        "raw data",
        "text column empty",
        ["prepare"],
        r"train\.csv: text column 'text' is empty on 1 row\(s\), first on line\(s\) \[6\]",
        TEXT,
        edit_csv("train.csv", set_cell("text", None, row=4), TEXT),
    ),
    Case(
        "raw data",
        "text of blanks only",
        ["prepare"],
        r"test\.csv: text column 'text' is empty on 1 row",
        TEXT,
        edit_csv("test.csv", set_cell("text", "   ", row=4), TEXT),
    ),
    Case(
        "raw data",
        "numbers where text belongs (wrong dtype)",
        ["prepare"],
        r"text column 'text' holds only numbers \(e\.g\. '\d+'\), not text",
        TEXT,
        edit_csv("train.csv", lambda d: d.assign(text=range(len(d))), TEXT),
    ),
    Case(
        "raw data",
        "text column missing",
        ["prepare"],
        r"test\.csv has no column 'text' \(competition\.text\.column\) .*set the competition's text\.column",
        TEXT,
        edit_csv("test.csv", lambda d: d.drop(columns=["text"]), TEXT),
    ),
    Case(
        "raw data",
        "file not UTF-8",
        ["prepare"],
        r"training file .*train\.csv is not UTF-8 text .* Save it as UTF-8",
        TEXT,
        lambda r: (raw(r, TEXT) / "train.csv").write_bytes(
            (raw(r, TEXT) / "train.csv").read_bytes() + "caf\xe9,x,1\n".encode("latin-1")
        ),
    ),
    # a tabular competition (ames): typed features
    Case(
        "raw data",
        "tabular: a feature column missing from test.csv",
        ["prepare"],
        r"test\.csv has no feature column\(s\) \['Lot_Area'\] that the models were trained on .*add the column",
        TABLE,
        edit_csv("test.csv", lambda d: d.drop(columns=["Lot_Area"]), TABLE),
    ),
    Case(
        "raw data",
        "tabular: a numeric column holding a string",
        ["prepare"],
        r"train\.csv: mostly numeric column 'Lot_Area' holds text on 1 row\(s\), e\.g\. \['large'\], first on "
        r"line\(s\) \[5\]\. .*competition\.features\.missing.*competition\.features\.categorical",
        TABLE,
        edit_csv("train.csv", set_cell("Lot_Area", "large"), TABLE),
    ),
    Case(
        "raw data",
        "tabular: a target with NaN",
        ["prepare"],
        r"train\.csv: regression target 'Sale_Price' needs a finite number on every row, but 1 row\(s\) hold \['NaN'\]",
        TABLE,
        edit_csv("train.csv", set_cell("Sale_Price", "NaN"), TABLE),
    ),
    Case(
        "raw data",
        "tabular: a target log1p cannot take (target.transform)",
        ["prepare"],
        r"target column 'Sale_Price' holds 1 value\(s\) of -1 or less .*competition\.target\.transform=log1p",
        TABLE,
        edit_csv("train.csv", set_cell("Sale_Price", -5), TABLE),
    ),
    Case(
        "raw data",
        "tabular: an all-NaN feature column",
        ["prepare"],
        r"train\.csv: feature column 'Alley' is missing on every row .*add 'Alley' to competition\.features\.drop",
        TABLE,
        edit_csv("train.csv", lambda d: d.assign(Alley=np.nan), TABLE),
    ),
    Case(
        "raw data",
        "tabular: a categorical column holding another type in test.csv",
        ["prepare"],
        r"test\.csv: categorical column 'Street' holds only numbers here .* text categories in the training rows",
        TABLE,
        edit_csv("test.csv", lambda d: d.assign(Street=np.arange(len(d)) % 3), TABLE),
    ),
    Case(
        "raw data",
        "tabular: features.categorical names a column train.csv lacks",
        ["prepare", "competition.features.categorical=[Lot_Areaa]"],
        r"train\.csv has no column 'Lot_Areaa' \(competition\.features\.categorical\)",
        TABLE,
    ),
    # configuration: any command; `podium train` shown
    Case(
        "config",
        "tabular: metric rmsle on a log1p target (the log taken twice)",
        ["train", "competition.metric=rmsle"],
        r"competition\.target\.transform is log1p and the metric rmsle takes log1p again.*use metric: rmse",
        TABLE,
    ),
    Case(
        "config",
        "tabular: a network of the user's on a table",
        ["train", "model=rescnn"],
        r"model=rescnn \(network\) reads image and text inputs but competition=ames is a tabular competition\. "
        r"Choose a tabular model: catboost, lightgbm, mlp, xgboost",
        TABLE,
    ),
    Case(
        "config",
        "unknown key",
        ["train", "model.widht=64"],
        r"model \(from conf/model/cnn\.yaml\) has no key 'widht'\. Did you mean model\.width\?",
    ),
    Case(
        "config",
        "unknown option of a group",
        ["train", "model=resnet"],
        r"'model/resnet' does not exist\. Valid choices for 'model': catboost, cnn, efficientnet",
    ),
    Case(
        "config",
        "wrong type",
        ["train", "trainer.max_epochs=many"],
        r"`trainer\.max_epochs`: Value 'many' of type 'str' could not be converted to Integer",
    ),
    Case(
        "config",
        "one fold (n_splits=1)",
        ["train", "competition.cv.n_splits=1"],
        r"competition\.cv\.n_splits must be at least 2 \(got 1\)",
    ),
    Case(
        "config",
        "negative learning rate",
        ["train", "model.optimizer.lr=-0.1"],
        r"model\.optimizer\.lr=-0\.1 is out of range; it must be a positive learning rate",
    ),
    Case(
        "config",
        "unknown precision",
        ["train", "trainer.precision=8-bit"],
        r"trainer\.precision=8-bit is out of range; it must be one of auto, 32-true, bf16-mixed",
    ),
    Case(
        "config",
        "image model on a text competition",
        ["train", "model=cnn"],
        r"model=cnn \(cnn\) reads image inputs but competition=rotten-tomatoes is a text competition\. Choose a text model: lstm, tfidf, transformer",
        TEXT,
    ),
    Case(
        "config",
        "DDP processes spawned from inside the command",
        ["train", "trainer.strategy=ddp_spawn"],
        r"trainer\.strategy=ddp_spawn starts training processes from inside the command.*Use trainer\.strategy=ddp",
    ),
    Case(
        "config",
        "batch size that does not split across the DDP processes",
        ["train", "trainer.devices=3", "trainer.strategy=ddp"],
        r"model\.batch_size=128 is the global batch size, split evenly across the 3 training processes .* Set model\.batch_size to a multiple of 3",
    ),
    Case(
        "config",
        "SyncBatchNorm on the CPU",
        ["train", "trainer.sync_batchnorm=true"],
        r"trainer\.sync_batchnorm=true needs GPUs",
    ),
    Case(
        "config",
        "channels-last for a text model",
        ["train", "model=lstm", "train.channels_last=true"],
        r"train\.channels_last=true applies to image models, and rotten-tomatoes is a text competition",
        TEXT,
    ),
    Case(
        "config",
        "unknown LSTM pooling",
        ["train", "model=lstm", "model.pooling=attention"],
        r"model\.pooling is 'attention'; valid values are last, max, mean",
        TEXT,
    ),
    Case(
        "config",
        "pretrained model folder missing",
        ["train", "model=transformer", "model.pretrained=./weights/no-such-model"],
        r"model\.pretrained='\./weights/no-such-model': the folder .*weights/no-such-model does not exist",
        TEXT,
    ),
    Case(
        "config",
        "max_length beyond the model's limit",
        ["train", "model=transformer", "model.max_length=1024"],
        r"model\.max_length=1024 exceeds .*\(512 tokens.*Set model\.max_length=512 or less",
        TEXT,
    ),
    Case(
        "config",
        "max_length neither a number nor auto",
        ["train", "model=lstm", "model.max_length=long"],
        r"model\.max_length=long is out of range; it must be a whole number of tokens, or auto\. Fix it in conf/model/lstm\.yaml",
        TEXT,
    ),
    Case(
        "config",
        "an unknown truncation strategy",
        ["train", "model=transformer", "model.truncation=middle"],
        r"model\.truncation is 'middle'; valid values are head, tail, head_tail\. Fix it in conf/model/transformer\.yaml",
        TEXT,
    ),
    Case(
        "config",
        "class weights on a regression",
        ["train", "model=mlp", "model.class_weights=balanced"],
        r"model\.class_weights=balanced in conf/model/mlp\.yaml, but ames is a regression: there are no classes",
        TABLE,
    ),
    Case(
        "config",
        "balanced class weights beside the user's own loss",
        ["train", "model=rescnn", "model.class_weights=balanced"],
        r"model\.class_weights=balanced in conf/model/rescnn\.yaml beside the user's loss .*CrossEntropyLoss.*model\.class_weights=none",
    ),
    Case(
        "config",
        "a competition file whose name: is another competition's",
        ["train"],
        r"conf/competition/animals\.yaml says `name: mimg`, but a competition's name must equal its file name .*Set `name: animals`",
        breaks=edit_conf("competition/animals.yaml", "name: animals", "name: mimg"),
    ),
    Case(
        "config",
        "renaming the competition on the command line",
        ["train", "competition.name=mimg"],
        r"competition\.name=mimg on the command line renames competition animals",
    ),
    Case(
        "config",
        "TAB indentation in a competition file",
        ["train"],
        r"Invalid YAML in conf/competition/animals\.yaml, line \d+, column \d+: .*Indent with spaces, not tabs",
        breaks=edit_conf("competition/animals.yaml", "  height: 28", "\theight: 28"),
    ),
    Case(
        "config",
        "YAML syntax error in a competition file",
        ["train"],
        r"Invalid YAML in conf/competition/animals\.yaml, line 13, column 1: .*sequence that starts on line 12, column 10\)\. .*close any open bracket",
        breaks=edit_conf("competition/animals.yaml", "classes: [bear,", "classes: [[bear,"),
    ),
    Case(
        "config",
        "class names YAML reads as booleans",
        ["train"],
        r"competition\.classes in conf/competition/animals\.yaml holds true \(a YAML boolean\), false \(a YAML boolean\), not text.*Quote every class name",
        breaks=edit_conf("competition/animals.yaml", "[bear, bird,", "[yes, no,"),
    ),
    Case(
        "config",
        "a class listed twice",
        ["train"],
        r"competition\.classes in conf/competition/animals\.yaml lists 'bear' more than once",
        breaks=edit_conf("competition/animals.yaml", "[bear, bird,", "[bear, bear,"),
    ),
    Case(
        "config",
        "no devices (trainer.devices=0)",
        ["train", "trainer.devices=0"],
        r"trainer\.devices=0 is out of range; it must be a positive number of devices, -1 for every visible GPU, or auto",
    ),
    Case(
        "config",
        "a CNN of no channels (model.width=0)",
        ["train", "model.width=0"],
        r"model\.width=0 is out of range; it must be at least 1",
    ),
    Case(
        "config",
        "a CNN deeper than the images allow",
        ["train", "model.depth=5"],
        r"model\.depth=5 is out of range; it must be at most 4 for the competition's 28x28 images .*at least 32x32 pixels",
    ),
    Case(
        "config",
        "EfficientNet input too small",
        ["train", "model=efficientnet", "model.input_size=16"],
        r"model\.input_size=16 is out of range; it must be at least 32",
    ),
    Case(
        "config",
        "texts cut to no tokens (max_length=0)",
        ["train", "model=lstm", "model.max_length=0"],
        r"model\.max_length=0 is out of range; it must be at least 1 \(tokens kept per text\)",
        TEXT,
    ),
    Case(
        "config",
        "an LSTM vocabulary of no words (vocab_size=0)",
        ["train", "model=lstm", "model.vocab_size=0"],
        r"model\.vocab_size=0 is out of range; it must be at least 1 \(words kept; 0 leaves only \[UNK\]\)",
        TEXT,
    ),
    # the user's code: `podium train model=mine` (conf/model/mine.yaml, competitions/animals/models.py)
    Case(
        "user code",
        "a network module that does not exist",
        USER,
        r"Cannot import model\.net\._target_=competitions\.animals\.nets\.Flat: module competitions\.animals\.nets "
        r"raised ModuleNotFoundError: No module named 'competitions\.animals\.nets'",
        breaks=user_model({"_target_": "competitions.animals.nets.Flat"}),
    ),
    Case(
        "user code",
        "a network module that fails as it is imported",
        USER,
        r"module competitions\.animals\.models \(competitions/animals/models\.py\) raised NameError: name 'torchh' is not "
        r"defined",
        breaks=user_model({"_target_": f"{NET}.Flat"}, code="import torch\nx = torchh.zeros(1)\n"),
    ),
    Case(
        "user code",
        "a class name the module lacks",
        USER,
        r"module competitions\.animals\.models \(competitions/animals/models\.py\) has no 'Flatt'; its classes are "
        r"Broken, ExtraDim, Flat, NaNs",
        breaks=user_model({"_target_": f"{NET}.Flatt"}),
    ),
    Case(
        "user code",
        "a target that is not a network",
        USER,
        r"model\.net\._target_=competitions\.animals\.models\.helper is function, not a torch\.nn\.Module",
        breaks=user_model({"_target_": f"{NET}.helper"}),
    ),
    Case(
        "user code",
        "a constructor that rejects the arguments",
        USER,
        r"Cannot build model\.net \(competitions\.animals\.models\.Flat\(channels, height, width, n_outputs, "
        r"hidden=8\)\): got an unexpected keyword argument 'depth'",
        breaks=user_model({"_target_": f"{NET}.Flat", "depth": 3}, prepare=True),
    ),
    Case(
        "user code",
        "a forward returning the wrong shape",
        USER,
        r"returned shape \(N, 1, 10\) on one batch of 4 rows \(images of shape \(4, 1, 28, 28\) scaled to \[0, 1\]\); "
        r"expected \(N, 10\)",
        breaks=user_model({"_target_": f"{NET}.ExtraDim"}, prepare=True),
    ),
    Case(
        "user code",
        "a sweep over a forward returning the wrong shape",
        [
            "tune",
            "model=mine",
            "trainer=smoke",
            "+tune.search_space={model:{optimizer:{lr:{type:float,low:0.001,high:0.01}}}}",
        ],
        r"returned shape \(N, 1, 10\) on one batch of 4 rows .*expected \(N, 10\)",
        breaks=user_model({"_target_": f"{NET}.ExtraDim"}, prepare=True),
    ),
    Case(
        "user code",
        "a network whose first output is NaN",
        USER,
        r"model\.net \(competitions\.animals\.models\.NaNs\) returned NaN or infinite logits on one batch",
        breaks=user_model({"_target_": f"{NET}.NaNs"}, prepare=True),
    ),
    Case(
        "user code",
        "a forward that fails",
        USER,
        r"model\.net \(competitions\.animals\.models\.Broken\) failed on one batch of 4 training rows .*RuntimeError",
        breaks=user_model({"_target_": f"{NET}.Broken"}, prepare=True),
    ),
    Case(
        "user code",
        "a network with no optimizer",
        USER,
        r"model\.optimizer has no _target_, and a network trains with one\. Set it in conf/model/mine\.yaml",
        breaks=user_model({"_target_": f"{NET}.Flat"}, optimizer=False),
    ),
    Case(
        "config",
        "an unknown image fit policy",
        ["prepare", "competition.image.fit=squash"],
        r"competition\.image\.fit is 'squash'; valid values are resize, center_crop, letterbox",
    ),
    Case(
        "config",
        "a disk cache smaller than the network's input",
        ["train", "competition.image.store=stream", "data.image_cache_side=16"],
        r"data\.image_cache_side=16 .*at least the network's input side, 28",
    ),
    Case(
        "config",
        "augmentation items of no single size",
        ["train", "trainer=smoke", "augment.items=[{_target_:albumentations.HorizontalFlip}]"],
        r"augment\.items turn images of different sizes into different sizes .*RandomResizedCrop",
    ),
    Case(
        "config",
        "augmentation items of another size than the CNN's head takes",
        ["train", "trainer=smoke", "augment.items=[{_target_:albumentations.RandomResizedCrop,size:[20,20]}]"],
        r"augment\.items train at 20x20 pixels, but model=cnn \(cnn\) has a dense head sized for competition\.image, 28x28",
    ),
    Case(
        "user code",
        "an estimator on streamed images",
        [*USER, "competition.image.store=stream"],
        r"model=mine \(estimator\) fits on every image's pixels in memory at once, but competition\.image\.store=stream",
        breaks=user_model({"_target_": "sklearn.linear_model.LogisticRegression"}, code=None, family="estimator"),
    ),
    Case(
        "user code",
        "an estimator that is not one",
        USER,
        r"model\.estimator\._target_=collections\.OrderedDict is not a scikit-learn estimator",
        breaks=user_model({"_target_": "collections.OrderedDict"}, code=None, family="estimator"),
    ),
    Case(
        "user code",
        "a classifier without predict_proba",
        USER,
        r"model\.estimator \(LinearSVC\) has no predict_proba, which a multiclass task needs",
        breaks=user_model({"_target_": "sklearn.svm.LinearSVC"}, code=None, family="estimator"),
    ),
    Case(
        "user code",
        "a loss that reads the other shape than the task gives",
        ["train", "model=lstm", "model.loss={_target_:torch.nn.CrossEntropyLoss}", "trainer=smoke"],
        r"model\.loss is CrossEntropyLoss, but a binary task's network gives one logit \(or value\) per row",
        TEXT,
    ),
    Case(
        "user code",
        "an unknown family",
        USER,
        r"model\.family is 'netwrok'; valid families are cnn, efficientnet, tfidf, lstm, transformer, lightgbm, xgboost, catboost, mlp, "
        r"network, estimator",
        breaks=user_model({"_target_": f"{NET}.Flat"}, family="netwrok"),
    ),
    # submissions: `podium score --submission bad.csv` (and `podium submit` runs the same checks)
    Case("submission", "submission file missing", SCORE, r"Missing submission: .*bad\.csv does not exist"),
    Case(
        "submission",
        "wrong ids",
        SCORE,
        r"ids differ from the sample: missing \['\d+'\], unexpected \['nope'\]",
        breaks=submission(lambda d: d.assign(id=["nope", *d["id"][1:]])),
    ),
    Case(
        "submission",
        "wrong order",
        SCORE,
        r"ids are not in the sample submission's order",
        breaks=submission(lambda d: d.iloc[[1, 0, *range(2, len(d))]]),
    ),
    Case(
        "submission",
        "column missing",
        SCORE,
        r"columns are \['id'\], expected \['id', 'label'\]",
        breaks=submission(lambda d: d.drop(columns=["label"])),
    ),
    Case("submission", "empty (NaN) label", SCORE, r"1 empty label", breaks=submission(set_cell("label", None))),
    Case(
        "submission",
        "solution covering some ids only",
        ["score", "--submission", "good.csv", "--solution", "part.csv"],
        r"Unusable solution file part\.csv: its ids differ from the submission's: \d+ submission id\(s\) have no truth",
        breaks=lambda root: solution_variant(root, lambda d: d.iloc[:12]),
    ),
    Case(
        "submission",
        "solution with duplicate ids",
        ["score", "--submission", "good.csv", "--solution", "part.csv"],
        r"Unusable solution file part\.csv: 1 duplicated id",
        breaks=lambda root: solution_variant(root, lambda d: pd.concat([d, d.iloc[:1]])),
    ),
    Case(
        "submission",
        "solution without the target column",
        ["score", "--submission", "good.csv", "--solution", "part.csv"],
        r"Unusable solution file part\.csv: no column 'label' \(competition\.target_column\)",
        breaks=lambda root: solution_variant(root, lambda d: d.rename(columns={"label": "animal"})),
    ),
    Case(
        "submission",
        "solution with an empty label",
        ["score", "--submission", "good.csv", "--solution", "part.csv"],
        r"Unusable solution file part\.csv: column 'label' is empty on 1 row",
        breaks=lambda root: solution_variant(root, set_cell("label", "")),
    ),
    Case(
        "predict",
        "new rows without the text column",
        ["predict", "--test", "new.csv"],
        r"new\.csv has no column 'text' \(competition\.text\.column\)",
        TEXT,
        lambda root: (
            pd.read_csv(raw(root, TEXT) / "test.csv").drop(columns=["text"]).to_csv(root / "new.csv", index=False)
        ),
    ),
    Case(
        "predict",
        "new rows whose images are missing",
        ["predict", "--test", "new.csv", "--images", "data/animals/raw/images"],
        r"1 image\(s\) named by new\.csv are missing from data/animals/raw/images, e\.g\. \['nope\.png'\]",
        breaks=lambda root: pd.DataFrame({"id": ["nope"]}).to_csv(root / "new.csv", index=False),
    ),
    Case(
        "submission",
        "probability out of range",
        SCORE,
        r"probabilities outside \[0, 1\]",
        TEXT,
        submission(lambda d: d.assign(label=1.5), TEXT),
    ),
]


# -- cases that need a trained ensemble: tests/test_predict.py runs them on its smoke pipeline -----------------


@dataclass
class TrainedCase:
    area: str  # bundle: the folder `podium bundle` wrote is damaged | predict: the project's fitted state is
    what: str
    command: str  # as a user types it (the table's column)
    expect: str  # a regular expression the message must match
    breaks: Callable[[Path], None]  # edits the bundle folder, or the project's root


def _manifest_says(key: str, value: str):
    def breaks(bundle: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_text())
        (bundle / "manifest.json").write_text(json.dumps({**manifest, key: value}))

    return breaks


def _nan_weights(root: Path) -> None:
    """The CNN's first fold predicting NaN, and the ensemble refitted with it as it is now (its blend.json
    records the member's new fitted state), so the NaN is met while predicting."""
    from safetensors.torch import load_file, save_file

    from pipeline.inference.blend import fitted_digest

    weights = next((root / "outputs/animals/models/cnn/fitted").rglob("weights.safetensors"))
    save_file({k: v.float().fill_(float("nan")) for k, v in load_file(weights).items()}, weights)
    blend = root / "outputs/animals/ensemble/blend/blend.json"
    saved = json.loads(blend.read_text())
    saved["fitted"] = {folder: fitted_digest(root / folder) for folder in saved["fitted"]}
    blend.write_text(json.dumps(saved))


def _retrained(root: Path) -> None:
    """The CNN retrained by hand after the ensemble: one fold's weights are another's now."""
    folds = sorted((root / "outputs/animals/models/cnn/fitted").rglob("weights.safetensors"))
    folds[0].write_bytes(folds[1].read_bytes())


BUNDLE_RUN = "python predict.py --test test.csv --out sub.csv"
TRAINED_CASES = [
    TrainedCase(
        "bundle",
        "a file altered after bundling",
        BUNDLE_RUN,
        r"predict\.ipynb differs from the manifest \(SHA-256 \w+, expected \w+\)",
        lambda bundle: (bundle / "predict.ipynb").write_text("{}"),
    ),
    TrainedCase(
        "bundle",
        "a file missing",
        BUNDLE_RUN,
        r"outputs/animals/ensemble/blend/blend\.json is missing",
        lambda bundle: (bundle / "outputs/animals/ensemble/blend/blend.json").unlink(),
    ),
    TrainedCase(
        "bundle",
        "a file planted beside the bundle's own (a module that would shadow a package)",
        BUNDLE_RUN,
        r"numpy\.py is not in the manifest",
        lambda bundle: (bundle / "numpy.py").write_text("import os"),
    ),
    TrainedCase(
        "bundle",
        "a standard-library module planted in the bundle (imported by predict.py's own check)",
        BUNDLE_RUN,
        r"json\.py is not in the manifest",
        lambda bundle: (bundle / "json.py").write_text("raise SystemExit('the planted json.py ran')\n"),
    ),
    TrainedCase(
        "bundle",
        "a link to a folder outside the bundle (a package that would shadow the installed one)",
        BUNDLE_RUN,
        r"numpy is a symbolic link",
        lambda bundle: (bundle / "numpy").symlink_to(bundle.parent, target_is_directory=True),
    ),
    TrainedCase(
        "bundle",
        "its manifest missing",
        BUNDLE_RUN,
        r"manifest\.json is missing or unreadable \(FileNotFoundError\)",
        lambda bundle: (bundle / "manifest.json").unlink(),
    ),
    TrainedCase(
        "bundle",
        "made by another Podium version",
        BUNDLE_RUN,
        r"made by Podium 0\.0\.1, and this is Podium [\d.]+",
        _manifest_says("podium", "0.0.1"),
    ),
    TrainedCase(
        "predict",
        "a member whose fitted weights predict NaN",
        "podium predict --test data/animals/raw/test.csv --out sub.csv competition=animals",
        r"Member cnn .* predicted NaN or infinity for \d+ row\(s\)",
        _nan_weights,
    ),
    TrainedCase(
        "predict",
        "a member retrained after the ensemble was fitted",
        "podium predict --test data/animals/raw/test.csv --out sub.csv competition=animals",
        r"Member cnn \(.*\) is not the model the ensemble in .* was fitted with: it was retrained",
        _retrained,
    ),
]


def case_id(case: Case) -> str:
    return f"{case.area}: {case.what}"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and time, less cache/ (content-keyed caches of file hashes and tokens are not outputs).

    A raw images folder counts as one entry, its own time: a file added, removed or renamed in it
    changes that. It is not walked (about half a second for the demo's 9.7k files, twice a case); a
    file edited in place would show in the shared copy these projects hard-link to, which the
    session's `animals_data` fixture checks.
    """
    seen = {}
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        relative = here.relative_to(root)
        if relative.parts[:1] == ("cache",):
            subfolders.clear()
            continue
        if len(relative.parts) == 3 and relative.match("data/*/raw") and "images" in subfolders:
            subfolders.remove("images")
            seen[str(relative / "images")] = (-1, (here / "images").stat().st_mtime_ns)
        for name in (*files, *subfolders):
            if not relative.parts and name == "cache":
                continue
            stat = (here / name).stat()
            seen[str(relative / name)] = (stat.st_size if name in files else -1, stat.st_mtime_ns)
    return seen


def tiered(case: Case):
    """Config and submission cases compose or read a CSV (fast); raw-data and user-code cases run prepare or
    import torch (integration)."""
    return case if case.area in ("raw data", "user code") else pytest.param(case, marks=pytest.mark.fast)


@pytest.mark.parametrize("case", [tiered(case) for case in CASES], ids=case_id)
def test_bad_input_is_refused_with_one_paragraph_and_nothing_written(case, request, monkeypatch, capsys):
    # config, code and submission cases change no image: one link to the shared folder, not 9.7k links
    animals = "project" if case.area == "raw data" else "shared_images_project"
    fixture = {"animals": animals, "rotten-tomatoes": "text_project", "ames": "tabular_project"}[case.competition]
    root = request.getfixturevalue(fixture)
    if case.breaks:
        case.breaks(root)
    before = snapshot(root)
    monkeypatch.chdir(root)
    code = cli.main(
        [*case.command, f"competition={case.competition}", "tracking.uri=sqlite:///mlflow.db", "out_dir=runs/bad"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "\n\n" not in err.strip(), err
    assert err.startswith(f"podium {case.command[0]}: error: ") and re.search(case.expect, err), err
    assert snapshot(root) == before, "the failed command wrote or changed files"


@pytest.mark.fast
def test_debug_shows_the_traceback(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert cli.main(["--debug", "train", "competition.cv.n_splits=1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "PodiumError" in err and err.rstrip().endswith("or override it.")


def test_good_input_prepares_folds_and_images(project, make_cfg):
    from pipeline.prepare import prepare

    result = prepare(make_cfg("tracking=none", "data.limit_train_rows=500"))
    train = pd.read_parquet(result.folder / "train.parquet")
    assert len(train) == 500 and train["id"].is_unique and set(train["fold"]) == set(range(5))
    images = np.load(result.folder / "train_images.npy")
    assert images.shape == (500, 1, 28, 28) and images.dtype == np.uint8
    assert (result.folder / "config.yaml").is_file() and "root" not in (result.folder / "config.yaml").read_text()
    assert not list(result.folder.parent.glob(".*"))  # no temporary folders left behind


def markdown() -> str:
    lines = [
        "# Bad input: what Podium refuses, and what it says",
        "",
        "Each row is a case of `tests/test_bad_input.py`, run through the real command line on the demo",
        "projects: exit code 2, one paragraph naming the file or key and the fix, no traceback (`podium",
        "--debug ...` shows it), and nothing written. The bundle and predict cases at the end need a trained",
        "ensemble: `tests/test_predict.py` runs them on its smoke pipeline. Regenerate:",
        "`python tests/test_bad_input.py > docs/bad-input.md`.",
        "",
        f"{len(CASES) + len(TRAINED_CASES)} cases.",
        "",
        "| area | input | command | the message says (pattern) |",
        "| --- | --- | --- | --- |",
    ]
    for case in CASES:
        command = " ".join(["podium", *case.command, f"competition={case.competition}"])
        lines.append(f"| {case.area} | {case.what} | `{command}` | `{case.expect.replace('|', '/')}` |")
    for trained in TRAINED_CASES:  # run by tests/test_predict.py, on a trained ensemble
        lines.append(
            f"| {trained.area} | {trained.what} | `{trained.command}` | `{trained.expect.replace('|', '/')}` |"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.fast
def test_docs_table_lists_every_case():
    assert len(CASES) >= 25
    assert (REPO / "docs" / "bad-input.md").read_text() == markdown(), (
        "regenerate: python tests/test_bad_input.py > docs/bad-input.md"
    )


if __name__ == "__main__":
    sys.stdout.write(markdown())
