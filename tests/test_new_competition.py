"""A new competition needs no Python: Kaggle files plus one YAML file (the README's worked example).

Here a binary one, cats against dogs from the animals images, scored by ROC AUC on a
probability submission: every stage runs on it unchanged.
"""

import shutil

import pandas as pd
import pytest

from pipeline.config import compose
from pipeline.ensemble import ensemble
from pipeline.prepare import prepare
from pipeline.submit import submit
from pipeline.training.train import train

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
    train, solution = (f[f["label"].isin(["cat", "dog"])].rename(columns={"id": "image_id", "label": "species"})
                       for f in (train, solution))
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
    result = train(cfg("trainer.max_epochs=2", "model.batch_size=32", "trainer.enable_progress_bar=false",
                       "out_dir=outputs/pets/models/cnn"))
    assert result.metric == "roc_auc" and result.cv_score > 0.6
    ensemble(cfg("out_dir=outputs/pets/ensemble"))
    sub = submit(cfg("out_dir=outputs/pets/submission"))
    frame = pd.read_csv(sub.path)
    assert list(frame.columns) == ["image_id", "species"] and frame["species"].between(0, 1).all()
    assert sub.leaderboard_score > 0.6
