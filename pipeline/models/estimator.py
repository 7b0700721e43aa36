"""Any scikit-learn-API estimator or Pipeline (`family: estimator`), named by `model.estimator._target_`.

Not trained by Lightning: each fold fits the estimator on its training rows (`fit`); Podium
predicts its validation rows and the test set (`predict_proba`, or `predict` for regression) and
keeps the fitted estimator for `podium predict`. It reads the
texts as strings for a text competition (a Pipeline starting with a vectoriser), and each image's
pixels scaled to [0, 1], flattened, for an image competition. Nested `_target_`s build the steps
(Hydra's instantiate). Every `random_state` parameter, nested ones included, is set to the fold's
seed, so a run is repeatable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PodiumError, first_line
from pipeline.models import EstimatorFold
from pipeline.models.targets import import_target


def build(model: DictConfig, root: Path, seed: int) -> Any:
    """The configured estimator, with every random_state set to `seed`."""
    from hydra.utils import instantiate

    where = f"conf/model/{model.name}.yaml"
    import_target((model.get("estimator") or {}).get("_target_"), "model.estimator", where, root)
    spec = OmegaConf.to_container(model.estimator, resolve=True)
    try:
        estimator = instantiate(spec, _convert_="all")
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise PodiumError(
            f"Cannot build model.estimator ({spec.get('_target_')}): {type(cause).__name__}: {cause}. "
            f"Fix model.estimator in {where}."
        ) from None
    params = estimator.get_params(deep=True)
    seeds = {k: seed for k in params if k == "random_state" or k.endswith("__random_state")}
    return estimator.set_params(**seeds, **_tuples(estimator, params))


def _tuples(estimator: Any, params: dict[str, Any]) -> dict[str, tuple]:
    """YAML has no tuples: a list given where the parameter's default is a tuple (ngram_range) becomes one."""
    import inspect

    out = {}
    for key, value in params.items():
        if not isinstance(value, list):
            continue
        owner, name = estimator, key
        if "__" in key:
            path, _, name = key.rpartition("__")
            owner = params.get(path)
        default = inspect.signature(type(owner)).parameters.get(name) if owner is not None else None
        if default is not None and isinstance(default.default, tuple):
            out[key] = tuple(value)
    return out


def check(model: DictConfig, task: str, root: Path) -> None:
    """Before any data is read: the target imports, builds, has the scikit-learn API and the method `task` needs."""
    where = f"conf/model/{model.name}.yaml"
    target = (model.get("estimator") or {}).get("_target_")
    factory = import_target(target, "model.estimator", where, root)
    if isinstance(factory, type) and not all(hasattr(factory, m) for m in ("fit", "get_params", "set_params")):
        raise PodiumError(
            f"Invalid configuration: model.estimator._target_={target} is not a scikit-learn estimator "
            f"(it has no fit / get_params). Name an estimator or a Pipeline in {where}; for a torch network use "
            f"family: network and model.net._target_."
        )
    estimator = build(model, root, seed=0)
    needs = "predict" if task == "regression" else "predict_proba"
    if not hasattr(estimator, needs):  # a Pipeline has it when its last step has it
        raise PodiumError(
            f"model.estimator ({type(estimator).__name__}) has no {needs}, which a {task} task needs"
            + (
                " for its probabilities. Use a classifier that has it (e.g. LogisticRegression; "
                "SVC(probability=true)), or wrap it in sklearn.calibration.CalibratedClassifierCV"
                if needs == "predict_proba"
                else ". Use a regressor"
            )
            + f", in {where}."
        )


def fit(model: DictConfig, fold: EstimatorFold) -> Any:
    """The estimator fitted on the fold's training rows."""
    estimator = build(model, fold.root, fold.seed)
    try:
        return estimator.fit(fold.train_rows, fold.target)
    except Exception as exc:  # the user's estimator and its parameters
        first = first_line(exc)
        raise PodiumError(
            f"model.estimator ({type(estimator).__name__}) failed to fit: {type(exc).__name__}: {first}. Fix "
            f"model.estimator in conf/model/{model.name}.yaml (a text competition gives it the texts as strings; "
            f"an image competition each image's pixels in [0, 1], flattened)."
        ) from None


def predictions(estimator: Any, rows: Any, task: str, n_outputs: int) -> np.ndarray:
    """A fitted estimator's predictions of `rows`: (rows, n_outputs), class probabilities or the value.

    Every estimator family's fold and `podium predict` go through here, so both read it the same way.
    """
    if task == "regression":
        return np.asarray(estimator.predict(rows), dtype=np.float64).reshape(-1, 1)
    probabilities = np.asarray(estimator.predict_proba(rows), dtype=np.float64)
    # columns follow estimator.classes_ (the class codes seen in the fold's training rows), not 0..K-1
    full = np.zeros((probabilities.shape[0], n_outputs))
    full[:, np.asarray(estimator.classes_).astype(int)] = probabilities
    return full
