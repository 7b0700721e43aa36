"""Shared fixtures: a throw-away Podium project with the real configs and the real demo data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import compose

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def animals_data(tmp_path_factory) -> Path:
    """data/animals/{raw,private} built once per session by the competition's own build script."""
    folder = tmp_path_factory.mktemp("animals-data") / "animals"
    subprocess.run([sys.executable, str(REPO / "competitions" / "animals" / "build.py"), "--out", str(folder)],
                   check=True, capture_output=True)
    return folder


@pytest.fixture
def project(tmp_path, animals_data) -> Path:
    """A project root: a copy of conf/ and a private copy of the animals data (tests may break it)."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copytree(animals_data, tmp_path / "data" / "animals")
    return tmp_path


@pytest.fixture
def make_cfg(project):
    """Compose the real config for the test project, tracking into its own SQLite file."""

    def make(*overrides: str):
        return compose(["tracking.uri=sqlite:///mlflow.db", *overrides], root=project)

    return make
