"""Bad text input: each refused with the file or key and the fix, before anything is written."""

import pandas as pd
import pytest

from pipeline.errors import PodiumError
from pipeline.io import prepared_dir
from pipeline.prepare import prepare
from pipeline.training.train import train


def edit(path, change):
    frame = pd.read_csv(path, dtype={"id": str})
    change(frame).to_csv(path, index=False)


def set_text(value, row=4):
    def change(frame):
        frame.loc[row, "text"] = value
        return frame

    return change


RAW_CASES = {
    "empty text": ("train.csv", set_text(None), r"train\.csv: text column 'text' is empty or not text on 1 row\(s\), first on line\(s\) \[6\]"),
    "blank text": ("test.csv", set_text("   "), r"test\.csv: text column 'text' is empty or not text on 1 row"),
    "numbers, not text": ("train.csv", lambda f: f.assign(text=range(len(f))), r"text column 'text' holds int64 values, not text"),
    "missing text column": ("test.csv", lambda f: f.drop(columns=["text"]), r"test\.csv has no column 'text'.*competition's id_column"),
}


@pytest.mark.parametrize("case", RAW_CASES, ids=list(RAW_CASES))
def test_bad_text_files_are_refused(case, make_text_cfg, text_project):
    file, change, message = RAW_CASES[case]
    edit(text_project / "data" / "rotten-tomatoes" / "raw" / file, change)
    cfg = make_text_cfg()
    with pytest.raises(PodiumError, match=message):
        prepare(cfg)
    assert not prepared_dir(cfg).exists()


MODEL_CASES = {
    "model folder that does not exist": (["model=transformer", "model.pretrained=./weights/no-such-model"],
                                         r"model\.pretrained='\./weights/no-such-model': the folder .*weights/no-such-model does not exist"),
    "max length above the model's limit": (["model=transformer", "model.max_length=1024"],
                                           r"model\.max_length=1024 exceeds .*\(512 tokens.*Set model\.max_length=512 or less"),
    "image model on a text competition": (["model=cnn"], r"model=cnn \(cnn\) reads image inputs but competition=rotten-tomatoes is a text "
                                                          r"competition\. Choose a text model: lstm, tfidf, transformer, transformer_tiny"),
    "unknown pooling": (["model=lstm", "model.pooling=attention"], r"model\.pooling is 'attention'; valid values are last, max, mean"),
}


@pytest.mark.parametrize("case", MODEL_CASES, ids=list(MODEL_CASES))
def test_bad_text_model_settings_are_refused_before_any_work(case, make_text_cfg, text_project):
    overrides, message = MODEL_CASES[case]
    with pytest.raises(PodiumError, match=message):
        train(make_text_cfg(*overrides, "out_dir=runs/bad"))
    assert not (text_project / "runs").exists() and not (text_project / "checkpoints").exists()
