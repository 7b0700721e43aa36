"""A new competition needs no Python: Kaggle files plus one YAML file (the README's worked example).

Here a binary one, cats against dogs from the animals images, scored by ROC AUC on a
probability submission: every stage runs on it unchanged.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import compose
from pipeline.ensemble import ensemble
from pipeline.prepare import prepare
from pipeline.submit import submit
from pipeline.training.train import train

REPO = Path(__file__).resolve().parents[1]

YAML = """
defaults:
  - /cv@cv: stratified
  - _self_
name: pets
task: binary
modality: image
id_column: image_id
target_column: species
classes: [cat, dog]            # negative class first: the submission holds P(dog)
metric: roc_auc
direction: maximize
models: [cnn]
image: {height: 28, width: 28, channels: 1}
submission: {format: probabilities}
cv: {n_splits: 2, seed: 3}
"""


@pytest.fixture
def pets(project):
    animals = project / "data" / "animals"
    raw, private = project / "data" / "pets" / "raw", project / "data" / "pets" / "private"
    (raw / "images").mkdir(parents=True)
    private.mkdir()
    train = pd.read_csv(animals / "raw" / "train.csv", dtype={"id": str})
    solution = pd.read_csv(animals / "private" / "solution.csv", dtype={"id": str})
    train, solution = (
        f[f["label"].isin(["cat", "dog"])].rename(columns={"id": "image_id", "label": "species"})
        for f in (train, solution)
    )
    for image_id in [*train["image_id"], *solution["image_id"]]:
        shutil.copy(animals / "raw" / "images" / f"{image_id}.png", raw / "images" / f"{image_id}.png")
    train.to_csv(raw / "train.csv", index=False)
    solution[["image_id"]].to_csv(raw / "test.csv", index=False)
    solution[["image_id"]].assign(species=0.5).to_csv(raw / "sample_submission.csv", index=False)
    solution.to_csv(private / "solution.csv", index=False)
    (project / "conf" / "competition" / "pets.yaml").write_text(YAML)
    return project


def test_binary_probability_competition_from_files_and_yaml(pets):
    def cfg(*overrides):
        return compose(["competition=pets", "tracking=none", *overrides], root=pets)

    prepared = prepare(cfg())
    assert prepared.n_folds == 2 and prepared.n_train > 1000
    result = train(
        cfg(
            "trainer.max_epochs=2",
            "model.batch_size=32",
            "trainer.enable_progress_bar=false",
            "out_dir=outputs/pets/models/cnn",
        )
    )
    assert result.metric == "roc_auc" and result.cv_score > 0.6
    ensemble(cfg("out_dir=outputs/pets/ensemble"))
    sub = submit(cfg("out_dir=outputs/pets/submission"))
    frame = pd.read_csv(sub.path)
    assert list(frame.columns) == ["image_id", "species"] and frame["species"].between(0, 1).all()
    assert sub.leaderboard_score > 0.6

    # a competition without held-out labels: the leaderboard says why it shows no local score
    from pipeline.leaderboard import NO_SOLUTION, leaderboard_rows

    (pets / "data/pets/private/solution.csv").rename(pets / "solution.csv")  # as on Kaggle: no test labels
    submit(cfg("out_dir=outputs/pets/submission"))
    rows = {row[1]: row for row in leaderboard_rows(pets / "outputs", pets)}
    blend = next(row for name, row in rows.items() if name.startswith("ensemble"))
    assert rows["cnn"][6] == NO_SOLUTION and blend[6] == NO_SOLUTION and blend[5] is None


def test_podium_new_scaffolds_a_commented_competition_that_prepares(pets, monkeypatch, capsys):
    """`podium new` writes the config (every key commented, the unknowns `???`), the pipeline and the layout."""
    import subprocess
    import sys

    from pipeline.cli import main

    monkeypatch.setenv("PODIUM_ROOT", str(pets))
    (pets / "conf" / "competition" / "pets.yaml").unlink()  # the fixture's hand-written file: scaffold it instead
    assert main(["new", "pets", "--task", "binary"]) == 0
    config = pets / "conf" / "competition" / "pets.yaml"
    text = config.read_text()
    keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", "- "))]
    assert all("  # " in line for line in keys if not line.endswith(":")), "every value carries a comment"
    for path in ("competitions/pets/dvc.yaml", "competitions/pets/tuned/cnn.yaml", "data/pets/raw/LAYOUT.md"):
        assert (pets / path).is_file(), path

    # the raw files were there: every key whose value depends on the data was read from them
    proposed = yaml.safe_load(text)
    assert proposed["id_column"] == "image_id" and proposed["target_column"] == "species"
    assert proposed["classes"] == ["cat", "dog"] and "check the order" in text  # binary: negative class first
    assert proposed["image"] == {"height": 28, "width": 28, "channels": 1, "resize": False}
    assert proposed["overrides"] == [] and "augment=flip_shift" in text  # no flips unless the competition says so
    printed = capsys.readouterr().out
    assert (
        "read from data/pets/raw/" in printed
        and "id_column: image_id (sample_submission.csv's first column)" in printed
    )
    assert main(["config", "competition=pets"]) == 0
    assert main(["new", "pets"]) == 2 and "already exists" in capsys.readouterr().err

    for old, new in (("models: [cnn, efficientnet]", "models: [cnn]"), ("n_splits: 5", "n_splits: 2")):
        text = text.replace(old, new)
    config.write_text(text)
    assert main(["pipeline", "check"]) == 2  # models: changed; the pipeline file still trains efficientnet
    assert "competitions/pets/dvc.yaml" in capsys.readouterr().err
    assert main(["pipeline", "render"]) == 0 and main(["pipeline", "check"]) == 0
    assert "outputs/pets/submission/metrics.json" in (pets / "dvc.yaml").read_text()  # the leaderboard reads it
    assert main(["prepare", "competition=pets", "tracking=none"]) == 0
    assert "prepared" in capsys.readouterr().out and (pets / "outputs/pets/prepared").is_dir()

    shutil.copy(REPO / "params.yaml", pets / "params.yaml")  # the trainer preset the stages read
    subprocess.run(["git", "init", "-q"], cwd=pets, check=True)
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    subprocess.run([*dvc, "init", "-q"], cwd=pets, check=True)
    stages = subprocess.run(
        [*dvc, "stage", "list", "--name-only", "competitions/pets/dvc.yaml"],
        cwd=pets,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert stages == [
        f"competitions/pets/dvc.yaml:{s}" for s in ("prepare", "train@cnn", "ensemble", "submit", "bundle")
    ]


def test_podium_new_without_raw_files_asks_for_every_key_that_depends_on_the_data(project, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.setenv("PODIUM_ROOT", str(project))
    assert main(["new", "reviews", "--modality", "text", "--task", "multiclass"]) == 0
    text = (project / "conf/competition/reviews.yaml").read_text()
    assert "id_column: ???" in text and "column: ???" in text, "no demo default passes for the data's columns"
    capsys.readouterr()
    assert main(["config", "competition=reviews"]) == 2
    error = capsys.readouterr().err
    for key in ("competition.id_column", "competition.target_column", "competition.classes", "competition.text.column"):
        assert key in error, key


def test_podium_new_on_raw_text_files_with_unusual_column_names_proposes_them(project, monkeypatch, capsys):
    from pipeline.cli import main

    raw = project / "data/reviews/raw"
    raw.mkdir(parents=True)
    words = ["a fine film", "dull and long, a film that forgets its own plot halfway", "yes", "no"]
    train = pd.DataFrame(
        {
            "review_id": [f"r{i}" for i in range(40)],
            "stars": [str(i % 3) for i in range(40)],
            "lang": "en",
            "body": [words[i % 4] for i in range(40)],
        }
    )
    train.to_csv(raw / "train.csv", index=False)
    train[["review_id", "lang", "body"]].to_csv(raw / "test.csv", index=False)
    train[["review_id", "stars"]].to_csv(raw / "sample_submission.csv", index=False)
    monkeypatch.setenv("PODIUM_ROOT", str(project))
    assert main(["new", "reviews", "--modality", "text", "--task", "multiclass"]) == 0
    proposed = yaml.safe_load((project / "conf/competition/reviews.yaml").read_text())
    assert proposed["id_column"] == "review_id" and proposed["target_column"] == "stars"
    assert proposed["classes"] == ["0", "1", "2"], "numbers quoted: YAML keeps them strings"
    assert proposed["text"]["column"] == "body", "the longest texts, not the language code"
    assert main(["config", "competition=reviews"]) == 0
