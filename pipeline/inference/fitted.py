"""A trained model's fitted state, kept so the model can predict new rows on its own.

`train` writes it into the model's output folder (DVC-tracked, so `dvc repro` keeps it current):

    fitted/fitted.json                    format, family, kind, seeds, folds, the network's input size
    fitted/seed_<s>/fold_<k>/
        weights.safetensors               a network's weights (of its best checkpoint), plain tensors
        tokenizer/                        a text network's tokenizer (the LSTM's fold vocabulary)
        estimator.skops                   an estimator, in scikit-learn's safe format (skops)

Neither format runs code when it loads: safetensors holds tensors only, and skops refuses any type
it was not told to trust. Podium trusts scikit-learn, NumPy and SciPy, and the modules the model's
own config names (`estimator._target_`): the user chose to run those when they trained it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.errors import PodiumError

FORMAT = 1  # bumped when the layout changes; predict refuses a fitted folder of another format
WEIGHTS, ESTIMATOR, TOKENIZER = "weights.safetensors", "estimator.skops", "tokenizer"
TRUSTED = ("sklearn", "numpy", "scipy")


def save_estimator(folder: Path, estimator: Any, name: str = ESTIMATOR) -> None:
    """A fitted estimator into `folder`/`name` (written by rename: never half-written)."""
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(folder / name) as tmp:
        sio.dump(estimator, tmp)


def load_estimator(path: Path, own_modules: set[str]) -> Any:
    """The estimator saved at `path`, loading only types of trusted modules (see the module docstring)."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if t.split(".")[0] not in (*TRUSTED, *own_modules)]
    if refused:
        raise PodiumError(
            f"{path} holds types from modules neither Podium nor the model's config names ({', '.join(refused[:5])}), "
            f"so it is not loaded: loading them could run code. Retrain the model, or name those classes in "
            f"the model's estimator config."
        )
    return sio.load(path, trusted=untrusted)


def save_network_weights(checkpoint: Path, target: Path) -> None:
    """The network's weights of a Lightning checkpoint (the module's `net.` entries) as safetensors."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    # Cloned: safetensors refuses tensors that share memory (tied weights), and a clone of each loads the same.
    weights = {
        k.removeprefix("net."): v.detach().clone().contiguous() for k, v in state.items() if k.startswith("net.")
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(target) as tmp:
        save_file(weights, str(tmp))


def export_fitted(
    fold_folder: Any, seeds: list[int], n_folds: int, kind: str, record: dict[str, Any], dest: Path
) -> None:
    """Every seed's and fold's fitted state, from the folds' working folders (`fold_folder(seed, fold)`) into `dest`."""
    for seed in seeds:
        for fold in range(n_folds):
            source, target = Path(fold_folder(seed, fold)), dest / f"seed_{seed}" / f"fold_{fold}"
            target.mkdir(parents=True, exist_ok=True)
            if kind == "estimator":
                shutil.copy2(source / ESTIMATOR, target / ESTIMATOR)
                continue
            save_network_weights(source / "best.ckpt", target / WEIGHTS)
            if (source / TOKENIZER).is_dir():
                shutil.copytree(source / TOKENIZER, target / TOKENIZER)
    io.write_json(dest / "fitted.json", {"format": FORMAT, "kind": kind, "seeds": seeds, "folds": n_folds, **record})


def read_record(folder: Path) -> dict[str, Any]:
    """A model folder's fitted.json, refusing a folder without one or of another format."""
    path = folder / "fitted" / "fitted.json"
    if not path.is_file():
        raise PodiumError(
            f"{folder} holds no fitted models ({path} is missing), so it cannot predict new rows: it was trained "
            f"before Podium kept them, or it is not a `podium train` output (a sweep trial keeps predictions only). "
            f"Retrain it: `dvc repro`, or `podium train` with the same overrides."
        )
    record = json.loads(path.read_text())
    if record.get("format") != FORMAT:
        raise PodiumError(
            f"{path} is of fitted-state format {record.get('format')}, and this Podium reads format {FORMAT}. "
            f"Retrain the model with this Podium, or predict with the Podium version that trained it."
        )
    return record
