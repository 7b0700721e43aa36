"""The notebooks run top to bottom (nbclient, a real Jupyter kernel) on real data and a real run's MLflow store."""

from __future__ import annotations

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes the notebooks on a trained project

NOTEBOOKS = REPO / "notebooks"


def run_notebook(name: str, root, competition: str):
    """Execute notebooks/<name>.ipynb in the project at `root`, for `competition` (its first cell's variable)."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.source = f'COMPETITION = "{competition}"'
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    stderr = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    return text, images, stderr


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs_and_choose_the_competition_first(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} is stored with outputs"
    assert code[0].source.startswith('COMPETITION = "animals"')


@pytest.mark.parametrize("competition", ["animals", "rotten-tomatoes"])
def test_explore_shows_balance_inputs_and_folds(competition, smoke_results, text_project):
    root = smoke_results.root if competition == "animals" else text_project
    text, images, stderr = run_notebook("explore", root, competition)
    assert f"{competition}: " in text and "training rows" in text and "folds: " in text
    assert "data profile of" in text and "imbalance ratio" in text, "the profile cell"
    assert images == 3, "class balance, the inputs (images or text lengths), fold shares"
    assert not stderr, stderr
    if competition == "rotten-tomatoes":
        assert "grouped by movie" in text


def test_results_reads_the_runs_from_mlflow(smoke_results):
    text, images, stderr = run_notebook("results", smoke_results.root, "animals")
    assert "latest of 2 models, 1 ensemble, 1 submission" in text
    board = text[text.index("local LB") :]
    assert "cnn_wide" in board and "ensemble (" in board
    assert images == 4, "fold variance, ensemble weights, confusion matrix, worst mistakes"
    assert not stderr, f"warnings or progress bars in the notebook: {stderr}"
