"""The MLflow UI over a real run's store, opened in headless Chromium (Debian's `chromium`; `.ci/run` installs it).

Screenshots land in test-artifacts/ (or $PODIUM_TEST_ARTIFACTS) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO, free_port, wait_for_http

pytestmark = pytest.mark.slow  # a browser on the MLflow UI

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("PODIUM_TEST_ARTIFACTS", REPO / "test-artifacts"))
# Chromium on a closed network: no background calls home, no sandbox (CI runs as root), no GPU.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None and not os.environ.get("CI"):  # in CI a missing browser is a failure, not a skip
    pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)", allow_module_level=True)


@pytest.fixture
def ui(smoke_results):
    """`podium ui` on a free loopback port over the smoke run's store; stopped whatever happens."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port), "tracking.uri=sqlite:///mlflow.db"],
        cwd=smoke_results.root,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # podium stops the server's own process group in turn
        server.communicate(timeout=60)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is not installed: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def shoot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"mlflow-ui-{name}.png"
    page.screenshot(path=str(path))
    return path


def test_mlflow_ui_shows_models_nested_folds_ensemble_and_a_runs_metrics_and_plots(smoke_results, ui, page):
    client = mlflow.MlflowClient(f"sqlite:///{smoke_results.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("animals").experiment_id
    train_run = client.search_runs([experiment], "tags.stage = 'train' and tags.model = 'cnn_wide'")[0].info.run_id
    (prepare_run,) = client.search_runs([experiment], "tags.stage = 'prepare'")  # the data profile, logged once
    assert prepare_run.data.metrics["rows_train"] == 400 and prepare_run.data.metrics["imbalance_ratio"] >= 1
    assert {a.path for a in client.list_artifacts(prepare_run.info.run_id)} == {"profile.json", "meta.json"}

    # The experiment's runs, in the "Model training" view (MLflow 3 opens on its GenAI view otherwise).
    page.goto(f"{ui}/#/experiments/{experiment}/runs?workflowType=machine_learning")
    for name in ("prepare animals", "cnn", "cnn_wide", "ensemble", "submission"):
        page.get_by_role("link", name=name, exact=True).first.wait_for(timeout=60_000)
    assert page.get_by_text("cnn_wide fold 0", exact=True).count() == 0  # folds are nested, shown on demand
    expanders = page.locator("button[data-component-id*='runnamecellrenderer']")  # the +/- beside a parent run
    assert expanders.count() == 2, "cnn and cnn_wide each have nested fold runs"
    for k in range(expanders.count()):
        expanders.nth(k).click()
    for name in ("cnn fold 0", "cnn fold 1", "cnn_wide fold 0", "cnn_wide fold 1"):
        page.get_by_role("link", name=name, exact=True).wait_for(timeout=30_000)
    assert page.get_by_text("9 matching runs").count() == 1  # prepare, 2 models, ensemble, submission, 4 folds
    shoot(page, "experiment")

    # A training run's page: its parameters and CV metrics ...
    page.goto(f"{ui}/#/experiments/{experiment}/runs/{train_run}?workflowType=machine_learning")
    page.get_by_text("cv_accuracy", exact=True).first.wait_for(timeout=60_000)
    for text in ("fold_std", "model.width", "competition"):
        assert page.get_by_text(text, exact=True).count() >= 1, f"{text} not on the run page"
    shoot(page, "run")
    # ... and its artifacts: predictions and the plots folder, a confusion matrix shown inline.
    page.goto(f"{ui}/#/experiments/{experiment}/runs/{train_run}/artifacts?workflowType=machine_learning")
    for name in ("oof.parquet", "metrics.json", "plots"):
        page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
    page.get_by_text("plots", exact=True).first.click()
    page.get_by_text("confusion_matrix.png", exact=True).first.click()
    # the PNG decoded by the browser: an image as wide as the plot (the page's icons are far smaller)
    page.wait_for_function("() => [...document.images].some(i => i.complete && i.naturalWidth >= 600)", timeout=30_000)
    assert shoot(page, "artifacts").stat().st_size > 20_000
