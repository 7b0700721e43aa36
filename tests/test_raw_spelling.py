"""Raw values are read as written: a generated table whose ids, labels and texts look like booleans,
nulls, numbers with leading zeros or exponents, white space and Unicode goes prepare -> train ->
ensemble -> submit with every id and label spelled exactly as in the input (pandas' type guessing
would have turned `true` into True, `01` into 1 and `NA` into NaN)."""

from __future__ import annotations

import csv
import random
import re
import shutil
from pathlib import Path

from conftest import REPO, podium

# Labels only YAML quoting keeps as text; ids that pandas would have guessed into other values.
LABELS = ["true", "NA", "01", "None"]
ODD_IDS = ["007", "NA", "None", "null", "1e5", "true", " 42", "0x1F", "ünï", "1.0", "-0", "nan"]
WORDS = {"true": "sun bright warm", "NA": "rain cold grey", "01": "snow white deep", "None": "wind loud fast"}

COMPETITION = """\
defaults:
  - /cv@cv: stratified
  - _self_
name: spelling
task: multiclass
modality: text
id_column: id
target_column: label
classes: ['true', 'NA', '01', 'None']   # quoted: YAML would read true, 01 and None as other things
metric: accuracy
direction: maximize
models: [tfidf]
files: {solution: ../private/solution.csv}
text: {column: text}
submission: {format: labels}
cv: {n_splits: 3, seed: 0}
"""


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_ids_and_labels_round_trip_exactly(tmp_path):
    rng = random.Random(0)
    root = tmp_path
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "conf/competition/spelling.yaml").write_text(COMPETITION)
    raw, private = root / "data/spelling/raw", root / "data/spelling/private"
    raw.mkdir(parents=True), private.mkdir(parents=True)
    ids = ODD_IDS + [f"{n:05d}" for n in range(228)]
    rng.shuffle(ids)
    labels = [LABELS[n % 4] for n in range(len(ids))]
    texts = [f"{WORDS[label]} ✓ {rng.choice(['NA', 'null', 'true', ''])} {n}" for n, label in enumerate(labels)]
    train, test = list(range(0, 180)), list(range(180, len(ids)))
    write_rows(raw / "train.csv", ["id", "text", "label"], [[ids[i], texts[i], labels[i]] for i in train])
    write_rows(raw / "test.csv", ["id", "text"], [[ids[i], texts[i]] for i in test])
    write_rows(raw / "sample_submission.csv", ["id", "label"], [[ids[i], "true"] for i in test])
    write_rows(private / "solution.csv", ["id", "label"], [[ids[i], labels[i]] for i in test])

    common = ["competition=spelling", "tracking.uri=sqlite:///mlflow.db"]
    for command in (
        ["prepare"],
        ["train", "model=tfidf", "out_dir=outputs/spelling/models/tfidf"],
        ["ensemble", "out_dir=outputs/spelling/ensemble"],
        ["submit", "out_dir=outputs/spelling/submission"],
    ):
        code, printed = podium(root, *command, *common)
        assert code == 0, f"podium {command[0]}: {printed}"

    submission = read_rows(root / "submissions/spelling/submission.csv")
    assert submission[0] == ["id", "label"]
    assert [row[0] for row in submission[1:]] == [ids[i] for i in test]  # every id as written, in the sample's order
    assert {row[1] for row in submission[1:]} <= set(LABELS)  # labels spelled as `classes:` spells them
    right = sum(row[1] == labels[i] for row, i in zip(submission[1:], test))
    assert right / len(test) > 0.9  # the words give the class away: labels kept their meaning
    code, printed = podium(root, "score", "--submission", str(root / "submissions/spelling/submission.csv"), *common)
    assert code == 0 and f"accuracy: {right / len(test):.5f}" in printed, printed


def test_a_fold_whose_metric_is_undefined_is_named_not_scored_nan(tmp_path, capsys):
    """Groups that put one class alone in a fold: AUC is undefined there. The training stops with the fold
    named and its class counts, and writes nothing, instead of a CV of NaN."""
    root = tmp_path
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "conf/competition/lonely.yaml").write_text(
        COMPETITION.replace("name: spelling", "name: lonely")
        .replace("task: multiclass", "task: binary")
        .replace("classes: ['true', 'NA', '01', 'None']", "classes: [bad, good]")
        .replace("metric: accuracy", "metric: roc_auc")
        .replace("submission: {format: labels}", "submission: {format: probabilities}")
        .replace("/cv@cv: stratified", "/cv@cv: group")
        .replace("cv: {n_splits: 3, seed: 0}", "cv: {n_splits: 3, seed: 0, group_column: g}")
    )
    raw = root / "data/lonely/raw"
    raw.mkdir(parents=True)
    rows = [
        [
            f"r{n}",
            f"{'good fine' if n % 2 else 'bad poor'} {n}",
            "good" if n % 2 else "bad",
            "only_yes" if n < 40 and n % 2 else ("only_no" if n < 40 else "mixed"),
        ]
        for n in range(120)
    ]
    write_rows(raw / "train.csv", ["id", "text", "label", "g"], rows)
    write_rows(raw / "test.csv", ["id", "text"], [["t1", "good"], ["t2", "bad"]])
    write_rows(raw / "sample_submission.csv", ["id", "label"], [["t1", "0.5"], ["t2", "0.5"]])
    code, _printed = podium(
        root,
        "train",
        "competition=lonely",
        "model=tfidf",
        "tracking.uri=sqlite:///mlflow.db",
        "out_dir=outputs/lonely/models/tfidf",
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(
        r"tfidf fold \d: the roc_auc of its validation rows is undefined \(NaN\).*hold \{'bad': 0, 'good': 20\}", err
    ), err
    assert not (root / "outputs/lonely/models/tfidf/oof.parquet").exists()
