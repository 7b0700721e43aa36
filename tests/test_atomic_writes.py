"""A stage killed while it writes a file leaves the previous complete file or none, never half of one,
and the next run clears the abandoned temporary file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import cli
from pipeline.predictions import Predictions

pytestmark = pytest.mark.slow  # stages killed at every file boundary

# Runs a podium command in which writing the temporary file of `target` stops halfway: the file is
# truncated to half its size and the process SIGKILLs itself, as a kill (or power cut) mid-write would.
DIE_MID_WRITE = """
import os, signal, sys
import pandas as pd
target = sys.argv[1]

def dying(real):
    def write(self, path, *args, **kwargs):
        out = real(self, path, *args, **kwargs)
        if os.path.basename(str(path)).startswith("." + target + "."):
            os.truncate(path, os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return write

pd.DataFrame.to_parquet = dying(pd.DataFrame.to_parquet)
pd.DataFrame.to_csv = dying(pd.DataFrame.to_csv)
from pipeline.cli import main
sys.exit(main(sys.argv[2:]))
"""

ARGS = ["tracking.uri=sqlite:///mlflow.db"]
ENSEMBLE = ["ensemble", "ensemble.members=[good,weak]", "out_dir=outputs/animals/ensemble", *ARGS]
SUBMIT = ["submit", "out_dir=outputs/animals/submission", *ARGS]


@pytest.fixture
def members(project, make_cfg):
    """Two models' predictions on the real ids, so the ensemble and the submission can run."""
    comp = make_cfg().competition
    train = pd.read_csv(project / "data/animals/raw/train.csv", dtype={"id": str})
    test_ids = pd.read_csv(project / "data/animals/raw/test.csv", dtype={"id": str})["id"].to_numpy()
    target = train["label"].map({c: i for i, c in enumerate(comp.classes)}).to_numpy()
    rng = np.random.default_rng(0)
    for name, noise in (("good", 1.0), ("weak", 2.0)):

        def probs(rows, signal=None, noise=noise):
            logits = rng.normal(scale=noise, size=(rows, 10)) + (0 if signal is None else 2 * np.eye(10)[signal])
            e = np.exp(logits)
            return e / e.sum(1, keepdims=True)

        Predictions(
            train["id"].to_numpy(),
            np.arange(len(train)) % 5,
            target,
            probs(len(train), target),
            test_ids,
            probs(len(test_ids)),
        ).save(project / "outputs/animals/models" / name, comp)
    return project


def die_writing(root: Path, target: str, args: list[str]) -> None:
    run = subprocess.run([sys.executable, "-c", DIE_MID_WRITE, target, *args], cwd=root, capture_output=True, text=True)
    assert run.returncode == -9, run.stderr  # killed, as planned, in the middle of writing `target`


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


def test_ensemble_killed_mid_write_keeps_the_previous_files_whole(members, monkeypatch):
    monkeypatch.chdir(members)
    folder = members / "outputs/animals/ensemble"
    assert cli.main(ENSEMBLE) == 0
    before = {name: (folder / name).read_bytes() for name in ("oof.parquet", "metrics.json")}

    die_writing(members, "test.parquet", ENSEMBLE)
    assert len(leftovers(folder.parent)) == 1  # the half-built staging folder, under a hidden name
    pd.read_parquet(folder / "test.parquet")  # the previous file, whole
    assert (folder / "metrics.json").read_bytes() == before["metrics.json"]  # written after: untouched

    assert cli.main(ENSEMBLE) == 0
    assert leftovers(folder.parent) == [], "the next run removes what the killed one abandoned"
    assert (folder / "oof.parquet").read_bytes() == before["oof.parquet"]


def test_submission_killed_mid_write_leaves_no_partial_file(members, monkeypatch):
    monkeypatch.chdir(members)
    assert cli.main(ENSEMBLE) == 0
    submission = members / "submissions/animals/submission.csv"

    die_writing(members, "submission.csv", SUBMIT)  # first ever write: afterwards, no file at all
    assert not submission.exists() and len(leftovers(submission.parent)) == 1

    assert cli.main(SUBMIT) == 0
    complete = submission.read_bytes()
    assert leftovers(submission.parent) == [] and len(pd.read_csv(submission)) == 1944

    die_writing(members, "submission.csv", SUBMIT)  # a rewrite: the previous file stays, byte for byte
    assert submission.read_bytes() == complete


# Runs a podium command that SIGKILLs itself right after its N-th completed rename (each file's
# commit, and the exchange of a stage's folder): a kill at every file boundary in turn.
DIE_AFTER_RENAME = """
import os, signal, sys
from pipeline import io
count, limit = [0], int(sys.argv[1])

def counted(real):
    def call(*args, **kwargs):
        out = real(*args, **kwargs)
        count[0] += 1
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return call

os.replace = counted(os.replace)
io._exchange = counted(io._exchange)
from pipeline.cli import main
sys.exit(main(sys.argv[2:]))
"""


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def restore(folder: Path, state: dict[str, bytes]) -> None:
    shutil.rmtree(folder)
    for name, data in state.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("stage", ["ensemble", "submit"])
def test_stage_killed_at_every_file_boundary_leaves_the_old_outputs_or_the_new(stage, members, monkeypatch):
    """The old outputs come from a mean blend, the new from stacking. Killed after each rename in turn (every
    file's commit, the folder's exchange), the stage's folder is the old one byte for byte, or the new one
    whole, its files agreeing with the hashes its metrics.json records; the submission file is whole."""
    import json

    from pipeline.predictions import check_consistent

    monkeypatch.chdir(members)
    mean, stack = [*ENSEMBLE, "ensemble.method=mean"], [*ENSEMBLE, "ensemble.method=stack"]
    folder = members / "outputs/animals" / ("ensemble" if stage == "ensemble" else "submission")
    csv = members / "submissions/animals/submission.csv"
    assert cli.main(mean) == 0 and cli.main(SUBMIT) == 0  # the old outputs
    old_state, old_csv = folder_bytes(folder), csv.read_bytes()
    if stage == "submit":
        assert cli.main(stack) == 0  # the ensemble the new submission comes from
    command = stack if stage == "ensemble" else SUBMIT
    old_cv = json.loads(old_state["metrics.json"])["cv"]
    assert cli.main(command) == 0  # the new outputs' files (a stack's blend keeps its meta-model: one file more)
    new_files = folder_bytes(folder).keys()
    restore(folder, old_state)
    csv.write_bytes(old_csv)
    seen = []
    for limit in range(1, 60):
        run = subprocess.run(
            [sys.executable, "-c", DIE_AFTER_RENAME, str(limit), *command], cwd=members, capture_output=True, text=True
        )
        assert run.returncode in (0, -9), run.stderr
        state = folder_bytes(folder)
        if state == old_state:
            seen.append("old")
        else:
            metrics = json.loads(state["metrics.json"])
            assert state.keys() == new_files and metrics["cv"] != old_cv, f"a mix after rename {limit}"
            seen.append("new")
        check_consistent(folder)
        assert csv.read_bytes() == old_csv or len(pd.read_csv(csv)) == 1944  # whole, old or new
        if run.returncode == 0:  # no boundary left: the stage ran to its end
            break
        restore(folder, old_state)
        csv.write_bytes(old_csv)
    else:
        pytest.fail("the stage never ran to its end")
    assert seen[0] == "old" and seen[-1] == "new" and "old" in seen[1:-1], seen  # several boundaries, each kept whole


def test_outputs_get_the_modes_the_umask_gives_not_private_ones(tmp_path):
    """mkstemp and mkdtemp make 0600 files and 0700 folders: other users of a shared server could not read them."""
    import os

    from pipeline import io

    old = os.umask(0o022)
    try:
        io.write_json(tmp_path / "metrics.json", {"cv": 1})
        with io.staging_dir(tmp_path / "stage") as staging:
            io.write_text(staging / "config.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "stage").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "stage" / "config.yaml").stat().st_mode & 0o777 == 0o644
