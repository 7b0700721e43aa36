"""The user's own network (`family: network`): any `torch.nn.Module` named by `model.net._target_`.

Image networks map images scaled to [0, 1], (N, C, H, W), to N x n_outputs logits; text networks
map (input_ids, attention_mask) to N x n_outputs logits, over the word vocabulary the LSTM family
fits on each fold's training rows. The constructor receives what Podium knows by parameter name
(`channels`, `height`, `width`, `n_outputs`; for text `vocab_size`, `pad_id`, `max_length`) and
every other key of `model.net` from the model's YAML.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import PodiumError
from pipeline.models.lstm import make_tokenizer  # noqa: F401 - the text protocol's tokenizer: a fold's word vocabulary
from pipeline.models.targets import construct, import_target

IMAGE_FACTS = ("channels", "height", "width", "n_outputs")
TEXT_FACTS = ("vocab_size", "pad_id", "max_length", "n_outputs")


def net_class(model: DictConfig, root: Path) -> type:
    """The class `model.net._target_` names, checked to be an nn.Module."""
    from torch import nn

    where = f"conf/model/{model.name}.yaml"
    spec = model.get("net") or {}
    cls = import_target(spec.get("_target_"), "model.net", where, root)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        kind = type(cls).__name__ if not isinstance(cls, type) else f"a class ({cls.__mro__[1].__name__} subclass)"
        raise PodiumError(
            f"Invalid configuration: model.net._target_={spec.get('_target_')} is {kind}, not a torch.nn.Module. "
            f"family: network trains a network; for a scikit-learn estimator use family: estimator and "
            f"model.estimator._target_ in {where}."
        )
    return cls


def build_image(model: DictConfig, channels: int, height: int, width: int, n_outputs: int, root: Path):
    known = {"channels": channels, "height": height, "width": width, "n_outputs": n_outputs}
    return _build(model, known, root)


def build_text(model: DictConfig, tokenizer, n_outputs: int, root: Path):
    known = {
        "vocab_size": len(tokenizer),
        "pad_id": tokenizer.pad_token_id,
        "max_length": model.max_length,
        "n_outputs": n_outputs,
    }
    return _build(model, known, root)


def _build(model: DictConfig, known: dict, root: Path):
    given = OmegaConf.to_container(model.net, resolve=True)
    given.pop("_target_")
    return construct(net_class(model, root), given, known, "model.net", f"conf/model/{model.name}.yaml")


def check(model: DictConfig, task: str, root: Path) -> None:
    """Before any data is read: the class imports and is a network."""
    net_class(model, root)
