"""Shared fixtures: a throw-away Podium project with the real configs and the real demo data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from file_order import DurationRecorder, file_seconds

from pipeline.config import compose

REPO = Path(__file__).resolve().parents[1]


# -- tiers ---------------------------------------------------------------------------------------------

TIERS = ("fast", "integration", "slow")  # pyproject.toml describes each; `make test-fast` runs the first


def pytest_collection_modifyitems(config, items):
    """Every test in exactly one tier: the one it or its module (`pytestmark`) is marked with, else integration;
    the test files in the order the workers get them."""
    tiers_of_file: dict[str, list[str]] = {}
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(tiers)}: a test belongs to one tier")
        if not tiers:
            item.add_marker("integration")
        tiers_of_file.setdefault(item.nodeid.split("::", 1)[0], []).extend(tiers or ["integration"])
    # The longest files first (tests/file_order.py); stable: each file's tests stay together, in their order.
    seconds = file_seconds(tiers_of_file)
    items.sort(key=lambda item: -seconds[item.nodeid.split("::", 1)[0]])


def pytest_addoption(parser):
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="after a passing run, write each test file's seconds to tests/durations.json (the workers' order)",
    )


def pytest_configure(config):
    if config.getoption("store_durations"):
        config.pluginmanager.register(DurationRecorder(), "podium-durations")
    _pin_worker(config)


def _pin_worker(config):
    """Under pytest-xdist, each worker (and every process it starts) runs on its own share of the cores.

    Trainings take their threads from the process's CPU affinity (pipeline/training/threads.py), so a
    worker pinned to one core of two trains on one thread, and the `dvc repro` or `podium` it starts
    inherit the pin: two workers share the cores instead of oversubscribing them.
    """
    worker = getattr(config, "workerinput", {}).get("workerid")  # gw0, gw1, ... in a worker; absent otherwise
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    workers = int(config.workerinput["workercount"])
    index = int(worker.removeprefix("gw"))
    share = cores[index * len(cores) // workers : (index + 1) * len(cores) // workers]
    os.sched_setaffinity(0, share or [cores[index * len(cores) // workers]])  # more workers than cores: spread


def build_demo_data(name: str, factory) -> Path:
    """data/<name>/{raw,private}, built by the competition's own build script."""
    folder = factory.mktemp(f"{name}-data") / name
    subprocess.run(
        [sys.executable, str(REPO / "competitions" / name / "build.py"), "--out", str(folder)],
        check=True,
        capture_output=True,
    )
    return folder


def project_with(root: Path, data: Path, *, images: str = "linked") -> Path:
    """A project root: a copy of conf/ and a private copy of one competition's data (tests may break it).

    The tables are copied; image files are hard links to the session's demo data (~9.7k PNGs: 6 s to
    copy, 0.5 s to link). A test that changes an image must replace it, never write into it, or it
    would change every later test's data: `own_file(path)` first. `images="shared"` makes the images
    folder one symbolic link to the session's (instant), for tests that never change an image.
    """
    shutil.copytree(REPO / "conf", root / "conf")
    ignore = shutil.ignore_patterns("images") if images == "shared" else None
    shutil.copytree(data, root / "data" / data.name, copy_function=_link_images, ignore=ignore)
    if images == "shared" and (data / "raw" / "images").is_dir():
        (root / "data" / data.name / "raw" / "images").symlink_to(data / "raw" / "images", target_is_directory=True)
    return root


def _link_images(source: str, target: str) -> None:
    if Path(source).parent.name == "images":
        try:
            return os.link(source, target)
        except OSError:  # another file system (EXDEV), or one without hard links: copy
            pass
    shutil.copy2(source, target)


def own_file(path: Path) -> Path:
    """`path`, unlinked from the shared demo data, so the caller may write a new file there."""
    path.unlink()
    return path


@pytest.fixture(scope="session")
def animals_data(tmp_path_factory) -> Path:
    folder = build_demo_data("animals", tmp_path_factory)
    before = _stats(folder)
    yield folder
    # projects hard-link these images: a test that wrote into one instead of replacing it changed them all
    assert _stats(folder) == before, "a test changed the shared demo images in place: use own_file(path) first"


def _stats(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def project(tmp_path, animals_data) -> Path:
    return project_with(tmp_path, animals_data)


def config_maker(root: Path, *base: str):
    """compose(overrides) for the project at `root`, tracking into its own SQLite file, with no training-time
    estimate (seconds each; tests/test_data_choices.py tests it)."""

    def make(*overrides: str):
        return compose(["tracking.uri=sqlite:///mlflow.db", "train.estimate=false", *base, *overrides], root=root)

    return make


@pytest.fixture
def shared_images_project(tmp_path, animals_data) -> Path:
    """`project` whose images folder links to the session's: for tests that change no image (config checks)."""
    return project_with(tmp_path, animals_data, images="shared")


@pytest.fixture
def make_cfg(project):
    return config_maker(project)


@pytest.fixture(scope="session")
def rt_data(tmp_path_factory) -> Path:
    return build_demo_data("rotten-tomatoes", tmp_path_factory)


@pytest.fixture
def text_project(tmp_path, rt_data) -> Path:
    return project_with(tmp_path, rt_data)


@pytest.fixture
def make_text_cfg(text_project):
    return config_maker(text_project, "competition=rotten-tomatoes")


@pytest.fixture(scope="session")
def ames_data(tmp_path_factory) -> Path:
    return build_demo_data("ames", tmp_path_factory)


@pytest.fixture
def tabular_project(tmp_path, ames_data) -> Path:
    return project_with(tmp_path, ames_data)


@pytest.fixture
def make_tabular_cfg(tabular_project):
    return config_maker(tabular_project, "competition=ames")


# -- servers started by tests -------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen, timeout: float = 90) -> bytes:
    """The body of `url` once the server answers; fails if the server exits or stays silent."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited: {server.communicate()[0]}"
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"no answer from {url} in {timeout} s")


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses on which something listens on `port` (from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc/net writes them


# -- one small, complete run shared by the tests that read results (plots, MLflow UI, notebooks) -----------

SMOKE = (
    "trainer=smoke",
    "trainer.max_epochs=2",
    "data.limit_train_rows=400",
    "train.seeds=[0]",
    "tracking.uri=sqlite:///mlflow.db",
)


@dataclass
class SmokeResults:
    root: Path
    printed: dict[str, str]  # command -> what it printed (ensemble, submit)


def podium(root: Path, *args: str) -> tuple[int, str]:
    """`podium ARGS` in this process, in the project at `root`: exit code and standard output."""
    import contextlib
    import io
    import os

    from pipeline.cli import main

    out, before = io.StringIO(), os.environ.get("PODIUM_ROOT")
    os.environ["PODIUM_ROOT"] = str(root)
    try:
        with contextlib.redirect_stdout(out):
            code = main(list(args))
    finally:
        os.environ.pop("PODIUM_ROOT") if before is None else os.environ.__setitem__("PODIUM_ROOT", before)
    return code, out.getvalue()


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, animals_data) -> SmokeResults:
    """The animals pipeline on the smoke preset through the command line: prepare, two CNNs, ensemble, submit."""
    root = project_with(tmp_path_factory.mktemp("smoke-results"), animals_data)
    printed = {}
    steps = [
        ("prepare",),
        ("train", "out_dir=outputs/animals/models/cnn"),
        ("train", "model.name=cnn_wide", "model.width=24", "out_dir=outputs/animals/models/cnn_wide"),
        ("ensemble", "ensemble.members=[cnn,cnn_wide]", "out_dir=outputs/animals/ensemble"),
        ("submit", "out_dir=outputs/animals/submission"),
    ]
    for command, *overrides in steps:
        code, printed[command] = podium(root, command, *SMOKE, *overrides)
        assert code == 0, f"podium {command} failed: {printed[command]}"
    return SmokeResults(root, printed)
