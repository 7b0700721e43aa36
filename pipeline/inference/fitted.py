"""A trained model's fitted state, kept so the model can predict new rows on its own.

`train` writes it into the model's output folder (DVC-tracked, so `dvc repro` keeps it current):

    fitted/fitted.json                    format, family, kind, seeds, folds, the network's input size
    fitted/seed_<s>/fold_<k>/
        weights.safetensors               a network's weights (of its best checkpoint), plain tensors
        tokenizer/                        a text network's tokenizer (the LSTM's fold vocabulary)
        architecture/                     what the family needs besides weights (a Transformer's config.json)
        estimator.skops                   an estimator, in scikit-learn's safe format (skops)
        model.txt | model.ubj | model.cbm, gbdt.json
                                          gradient-boosted trees, in their library's own format

safetensors holds tensors only. skops builds only the types it is told to trust: Podium trusts
skops' defaults, scikit-learn's classes, NumPy's scalar types and the classes the model's own
config names by `_target_` (the user chose to run those when they trained it); never a function.
A fitted estimator that would not load again is refused when it is saved, while training.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.errors import PodiumError

FORMAT = 1  # bumped when the layout changes; predict refuses a fitted folder of another format
WEIGHTS, ESTIMATOR, TOKENIZER = "weights.safetensors", "estimator.skops", "tokenizer"
ARCHITECTURE = "architecture"  # what a family saves to rebuild the network without its pretrained source
TRUSTED = ("sklearn", "numpy")  # packages whose classes (not functions) skops may build: see _trusted


def config_targets(section: Any) -> set[str]:
    """Every `_target_` of a config section, as written: the classes skops may load besides scikit-learn's."""
    found: set[str] = set()
    if isinstance(section, dict):
        target = section.get("_target_")
        if isinstance(target, str):
            found.add(target)
        for value in section.values():
            found |= config_targets(value)
    elif isinstance(section, list):
        for value in section:
            found |= config_targets(value)
    return found


def save_estimator(folder: Path, estimator: Any, targets: set[str], what: str, name: str = ESTIMATOR) -> None:
    """A fitted estimator into `folder`/`name` (written by rename: never half-written), refused now, while
    training, if it could not be saved or loaded again (`targets`: the `_target_`s of its config)."""
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(folder / name) as tmp:
        try:
            sio.dump(estimator, tmp)
        except Exception as exc:  # a type skops cannot write
            raise PodiumError(
                f"{what}: its fitted {type(estimator).__name__} cannot be saved for `podium predict` "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). Use scikit-learn estimators skops can "
                f"save (https://skops.readthedocs.io), in the model's config."
            ) from None
        refused = _refused(sio.get_untrusted_types(file=tmp), targets)
        if refused:
            raise PodiumError(
                f"{what}: its fitted {type(estimator).__name__} holds types Podium would not load again "
                f"({', '.join(refused[:5])}): neither scikit-learn classes nor classes its config names by "
                f"`_target_`. Name those classes in the config, or use scikit-learn estimators."
            )


def load_estimator(path: Path, targets: set[str]) -> Any:
    """The estimator saved at `path`, building only trusted types (see `_trusted`)."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = _refused(untrusted, targets)
    if refused:
        raise PodiumError(
            f"{path} holds types Podium does not load ({', '.join(refused[:5])}): neither scikit-learn classes "
            f"nor classes the model's config names, and loading them could run code. Retrain the model here."
        )
    return sio.load(path, trusted=untrusted)


def _refused(untrusted: list[str], targets: set[str]) -> list[str]:
    return [name for name in untrusted if not _trusted(name, targets)]


def _trusted(name: str, targets: set[str]) -> bool:
    """Whether skops may build the type `name` (beyond its own defaults): a class a `_target_` of the config
    names exactly, a scikit-learn class, or a NumPy scalar type. Never a function: skops calls what it
    builds with arguments from the file (numpy.load would run a pickle), nor other NumPy or SciPy
    classes (numpy.memmap writes files)."""
    named = name in targets
    module_name, _, attribute = name.rpartition(".")
    if not named and module_name.split(".")[0] not in TRUSTED:
        return False
    import importlib

    import numpy as np

    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return False
    if not isinstance(found, type):  # a config's `_target_` too: a function named there is no class to build
        return False
    return named or module_name.split(".")[0] == "sklearn" or issubclass(found, (np.generic, np.dtype))


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
    fold_folder: Callable[[int, int], Path],
    seeds: list[int],
    n_folds: int,
    kind: str,
    record: dict[str, Any],
    dest: Path,
    files: tuple[str, ...] = (ESTIMATOR,),
) -> None:
    """Every seed's and fold's fitted state, from the folds' working folders (`fold_folder(seed, fold)`) into `dest`
    (`files`: what an estimator's fold keeps)."""
    for seed in seeds:
        for fold in range(n_folds):
            source, target = fold_folder(seed, fold), dest / f"seed_{seed}" / f"fold_{fold}"
            target.mkdir(parents=True, exist_ok=True)
            if kind == "estimator":
                for name in files:
                    shutil.copy2(source / name, target / name)
                continue
            save_network_weights(source / "best.ckpt", target / WEIGHTS)
            for folder in (TOKENIZER, ARCHITECTURE):
                if (source / folder).is_dir():
                    shutil.copytree(source / folder, target / folder)
    io.write_json(dest / "fitted.json", {"format": FORMAT, "kind": kind, "seeds": seeds, "folds": n_folds, **record})


def read_state(path: Path, missing: str, redo: str) -> dict[str, Any]:
    """A fitted-state JSON file (fitted.json, blend.json), refused where it is missing (`missing`: the whole
    message), unreadable or of another format (`redo`: what makes it again)."""
    if not path.is_file():
        raise PodiumError(missing)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PodiumError(f"{path} cannot be read ({type(exc).__name__}: {exc}). {redo}") from None
    found = record.get("format") if isinstance(record, dict) else None
    if found != FORMAT:
        raise PodiumError(f"{path} is of fitted-state format {found}, and this Podium reads format {FORMAT}. {redo}")
    return record


def read_record(folder: Path) -> dict[str, Any]:
    """A model folder's fitted.json, refusing a folder without one or of another format."""
    path = folder / "fitted" / "fitted.json"
    return read_state(
        path,
        f"{folder} holds no fitted models ({path} is missing), so it cannot predict new rows: it was trained "
        f"before Podium kept them, or it is not a `podium train` output (a sweep trial keeps predictions only). "
        f"Retrain it: `dvc repro`, or `podium train` with the same overrides.",
        "Retrain the model with this Podium, or predict with the Podium version that trained it.",
    )
