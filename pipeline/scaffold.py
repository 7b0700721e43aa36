"""`podium new NAME`: the files a new competition needs, every key commented.

Writes conf/competition/<name>.yaml (the competition's config; the keys to fill in are `???`),
competitions/<name>/{README.md, dvc.yaml, tuned/<model>.yaml} (its pipeline, rendered by
pipeline/dvc_files.py) and data/<name>/raw/LAYOUT.md (where Kaggle's files go), and adds the
competition to the root dvc.yaml's leaderboard. Nothing is overwritten (a root dvc.yaml edited by
hand is left as it is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline import io
from pipeline.config.schema import MODALITIES, TASKS
from pipeline.data.guess import Guess, read_raw
from pipeline.dvc_files import render_competition, render_root
from pipeline.errors import PodiumError
from pipeline.models import starters

DEFAULTS = {  # task -> metric, direction, submission format, fold scheme
    "binary": ("roc_auc", "maximize", "probabilities", "stratified"),
    "multiclass": ("accuracy", "maximize", "labels", "stratified"),
    "regression": ("rmse", "minimize", "labels", "kfold"),
}

COMPETITION_YAML = """\
# {name}: a {task} competition on {modality} data. Made by `podium new`; fill in the `???` keys,
# then put Kaggle's files in data/{name}/raw/ (see LAYOUT.md there) and run
#   podium config competition={name}        (checks this file, prints the composed config)
#   dvc repro competitions/{name}/dvc.yaml  (prepare -> train each model -> ensemble -> submit)
defaults:
  - /cv@cv: {scheme}      # fold scheme preset from conf/cv/ (stratified, group, kfold); keys below refine it
  - _self_

name: {name}              # must equal this file's name; outputs go to outputs/{name}/
task: {task}              # binary | multiclass | regression
modality: {modality}      # image | text | tabular
id_column: {id_column}    # the id column of train.csv, test.csv and sample_submission.csv{id_source}
target_column: {target_column}  # the column of train.csv to predict (also the submission's column){target_source}
{classes}
metric: {metric}          # accuracy, log_loss, roc_auc, macro_f1, qwk, rmse, mae (pipeline/metrics.py)
direction: {direction}    # must agree with the metric: maximize or minimize
report_metrics: []        # more metrics computed and reported beside the metric, e.g. [accuracy]
models: [{models}]        # trained by `dvc repro` (one stage each) and ensembled; conf/model/<name>.yaml
seeds: {{}}                 # model -> seeds trained and averaged, e.g. {{cnn: [0, 1, 2]}}; default one seed
{overrides}

files:                    # inside data/{name}/raw/ (Kaggle's layout)
  train: train.csv        # {train_columns}
  test: test.csv          # {test_columns}
  sample_submission: sample_submission.csv   # ids, order and columns the submission must match
{modality_files}  solution: ../private/solution.csv   # test labels for local scoring only; leave as is if you have none

{modality_section}

submission:
  format: {submission}    # labels: the class (or value) per id | probabilities: a column per class (binary: one)

cv:
  n_splits: 5             # folds: every model trains this many times
  seed: 42                # changing it reassigns folds: every model retrains
{group}"""

CLASSES = {
    "classification": "classes: ???            # every class as written in train.csv, e.g. [cat, dog]; binary: negative first;\n"
    "                        # quote numbers and yes/no/true/false, e.g. ['0', '1'] (YAML would retype them)",
    "regression": "classes: []              # regression: no classes",
}
IMAGE_FILES = """\
  images: {images}          # the image folder: <images>/<id><image_suffix>
  image_suffix: {image_suffix}      # the images' file extension (.png, .jpg, ...)
"""
IMAGE_SECTION = """\
image:
  height: {height}             # every image is decoded to height x width pixels{image_source}
  width: {width}              # images of other sizes: see resize
  channels: {channels}             # 1 = grey, 3 = RGB
  resize: {resize}           # false: an image of another size is an error naming the file; true: resize it"""
TEXT_SECTION = """\
text:
  column: {text_column}            # the column of train.csv and test.csv holding the text{text_source}"""
TABLE_SECTION = """\
features:                 # every column of train.csv but the id, the target and the group is a feature;
                          # numeric where every cell is a number, categorical otherwise (podium prepare prints them)
  categorical: []         # columns of numbers that are codes, not quantities, e.g. [zip_code]
  numeric: []             # columns that must hold a number (or a missing value) on every row
  drop: []                # columns that are not features
  missing: [""]           # cell values that mean a missing value, e.g. ["", "NA"]

target:
  transform: none         # regression: log1p trains on log(1 + y) and submits expm1 of the predictions"""
OVERRIDES = {  # the competition's own settings: augmentation and TTA belong to the data, not to a global default
    "image": "overrides: []            # Hydra overrides its commands apply, e.g. [augment=flip_shift, tta=flip] for\n"
    "                        # photos a mirror does not change; not for digits, characters or text in images",
    "text": "overrides: []            # Hydra overrides its commands apply, e.g. [model.max_length=256]",
    "tabular": "overrides: []            # Hydra overrides its commands apply, e.g. [data.num_threads=4]",
}
SECTIONS = {"image": IMAGE_SECTION, "text": TEXT_SECTION, "tabular": TABLE_SECTION}
COLUMNS = {  # modality -> (train.csv's columns, test.csv's), as the config and LAYOUT.md describe them
    "image": ("id, target; the images are files (below)", "id"),
    "text": ("id, target, text", "id, text"),
    "tabular": ("id, target, the feature columns", "id, the feature columns"),
}

LAYOUT = """\
# data/{name}/raw/: Kaggle's files for {name}

    train.csv               {id_column}, <target_column>{extra_train}
    test.csv                {id_column}{extra_test}
    sample_submission.csv   {id_column}, <target_column>: the ids, order and columns the submission must match
{images}
Optional, for local scoring only: ../private/solution.csv ({id_column}, <target_column>) with the test labels.
Column names and file names are set in conf/competition/{name}.yaml.
"""

README = """\
# {name}

A {task} competition on {modality} data (made by `podium new`).

- **Files**: `data/{name}/raw/` (see `LAYOUT.md` there).
- **Config**: `conf/competition/{name}.yaml`; check it with `podium config competition={name}`.
- **Pipeline**: `dvc repro competitions/{name}/dvc.yaml`; the submission lands in `submissions/{name}/submission.csv`.
- **Tuning**: `podium tune competition={name} model=<model>` writes `tuned/<model>.yaml`, which training applies.
"""

TUNED = """\
# Best parameters of {model} on {name}, written by `podium tune competition={name} model={model}`.
# `podium train` and `dvc repro` apply `overrides` by default (train.tuned=false ignores them;
# an override on the command line wins). Empty: not tuned yet.
overrides: {{}}
"""


@dataclass
class Scaffold:
    name: str
    written: list[Path]
    proposed: dict[str, str]  # data-dependent keys read from the raw files: key -> "value (where from)"


def new_competition(root: Path, name: str, modality: str = "image", task: str = "multiclass") -> Scaffold:
    """Write a new competition's config, pipeline and data layout under the project `root`."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise PodiumError(
            f"Competition name {name!r} is not usable: use lower-case letters, digits, '-' and '_' "
            f"(it names a config file, folders and Hydra's `competition=` option), e.g. house-prices."
        )
    if modality not in MODALITIES or task not in TASKS:
        raise PodiumError(
            f"--modality must be one of {', '.join(MODALITIES)} and --task one of {', '.join(TASKS)} "
            f"(got {modality}, {task})."
        )
    metric, direction, submission, scheme = DEFAULTS[task]
    models = starters(modality)
    found = read_raw(root / "data" / name / "raw", modality, task) or Guess()
    proposals = _proposals(found, task)
    values = dict(
        **proposals,
        overrides=OVERRIDES[modality],
        name=name,
        task=task,
        modality=modality,
        metric=metric,
        direction=direction,
        submission=submission,
        scheme=scheme,
        models=", ".join(models),
        modality_files=IMAGE_FILES.format(**proposals) if modality == "image" else "",
        modality_section=SECTIONS[modality].format(**proposals),
        train_columns=COLUMNS[modality][0],
        test_columns=COLUMNS[modality][1],
        group="  # group_column: site   # with /cv@cv: group: rows sharing a value stay in one fold\n",
    )
    competition = _align_comments(COMPETITION_YAML.format(**values).replace("\n\n\n", "\n\n"))
    files = {
        root / "conf" / "competition" / f"{name}.yaml": competition,
        root / "competitions" / name / "dvc.yaml": render_competition(root, name, yaml.safe_load(competition)),
        **_root_pipeline(root, name, yaml.safe_load(competition)),
        root / "competitions" / name / "README.md": README.format(**values),
        root / "data" / name / "raw" / "LAYOUT.md": LAYOUT.format(
            name=name,
            id_column=found.id_column or "<id>",
            extra_train={"image": ", <image files in images/>", "text": ", text", "tabular": ", <features>"}[modality],
            extra_test={"image": "", "text": ", text", "tabular": ", <features>"}[modality],
            images="    images/<id>.png         one image per id of train.csv and test.csv\n"
            if modality == "image"
            else "",
        ),
        **{root / "competitions" / name / "tuned" / f"{m}.yaml": TUNED.format(model=m, name=name) for m in models},
    }
    existing = [str(p.relative_to(root)) for p in files if p.exists() and p != root / "dvc.yaml"]
    if existing:
        raise PodiumError(
            f"Competition {name} already exists ({', '.join(existing)}): nothing was written. "
            f"Choose another name, or delete those files to start over."
        )
    for path, text in files.items():
        io.write_text(path, text)
    shown = {
        "id_column": found.id_column,
        "target_column": found.target_column,
        "classes": found.classes,
        "text.column": found.text_column,
        "image": f"{found.height}x{found.width}x{found.channels}" if found.height else None,
    }
    proposed = {k: f"{v} ({found.source[k]})" for k, v in shown.items() if v is not None and k in found.source}
    return Scaffold(name, list(files), proposed)


def _proposals(found: Guess, task: str) -> dict[str, str]:
    """The template's data-dependent values: what the raw files say (with where it was read), else `???`."""
    import yaml

    def said(key: str) -> str:
        return f"; read from {found.source[key]}" if key in found.source else ""

    if task == "regression":
        classes = CLASSES["regression"]
    elif found.classes:
        listed = yaml.safe_dump(found.classes, default_flow_style=True, width=10**6).strip()  # quotes '0', 'yes'
        order = "; binary: negative class first, check the order" if task == "binary" else ""
        classes = f"classes: {listed}  # every class as train.csv writes it{said('classes')}{order}"
    else:
        classes = CLASSES["classification"]
    return {
        "id_column": found.id_column or "???",
        "id_source": said("id_column"),
        "target_column": found.target_column or "???",
        "target_source": said("target_column"),
        "classes": classes,
        "text_column": found.text_column or "???",
        "text_source": said("text.column"),
        "images": found.images or "images",
        "image_suffix": found.image_suffix or ".png",
        "height": str(found.height or "???"),
        "width": str(found.width or "???"),
        "channels": str(found.channels or 3),
        "resize": "true" if found.resize else "false",
        "image_source": said("image"),
    }


def _root_pipeline(root: Path, name: str, config: dict) -> dict[Path, str]:
    """The root dvc.yaml with the new competition in its leaderboard, unless that file was edited by hand (kept)."""
    path = root / "dvc.yaml"
    if path.is_file() and path.read_text() != render_root(root):
        return {}
    return {path: render_root(root, new=name, new_config=config)}


def _align_comments(text: str, column: int = 28) -> str:
    """Line the end-of-line comments up at `column`, so the file reads as two columns."""
    lines = []
    for line in text.splitlines():
        code, sep, comment = line.partition("  # ")
        if sep and code.strip() and not code.lstrip().startswith("#"):
            line = f"{code.rstrip():<{column - 2}}  # {comment}"
        lines.append(line)
    return "\n".join(lines) + "\n"
