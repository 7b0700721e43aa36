"""Model families: one protocol for Podium's own and the user's.

A family is a `Family` record: the inputs it reads, whether Lightning trains it (`network`) or it
fits in one call (`estimator`), the dataclass its model YAML is checked against, and the module
holding its builders, imported only when a fold is built. The builders a module provides:

- network, image inputs: `build_image(model, channels, height, width, n_outputs, root)`: an
  nn.Module mapping images scaled to [0, 1], shaped (N, C, H, W), to N x n_outputs logits;
- network, table inputs: `build_table(model, schema, n_outputs, root, rows, target, task)` (an
  nn.Module mapping (numeric, categorical) tensors of `table_tensors(table, schema)` to logits; with
  the fold's training rows, fitted to them) and `table_tensors`;
- network, text inputs: `make_tokenizer(model, texts, root)` (a fast tokenizer, fitted on `texts`
  where the family learns its vocabulary) and `build_text(model, tokenizer, n_outputs, root)`: an
  nn.Module mapping (input_ids, attention_mask) to N x n_outputs logits;
- estimator: `fit(model, fold: EstimatorFold)`: a scikit-learn-API estimator fitted on the fold's
  training rows; Podium predicts with it (`predict_proba`, or `predict` for regression) and saves
  it with skops for `podium predict` (pipeline/inference/), unless the module keeps it in its
  library's own format: `FILES` (the file names a fitted fold keeps), `save(fitted, folder)` and
  `load(folder, model)` (the gradient-boosted trees: pipeline/models/gbdt.py);
- optionally `check(model, task, root)`: refusals before any data is read (a class that does not import);
- optionally, for `podium predict`: `save_architecture(net, folder)`, what a fitted fold needs besides
  its weights to be rebuilt (a Transformer's config.json), and `rebuild_overrides(model, folder)`,
  model keys that rebuild it from that folder instead of from pretrained weights.

A family of `modality="any"` provides the builders of both modalities. Families beyond the
built-in ones come from installed packages through the entry-point group `podium.families`
(name: the family's name; value: `module:attribute`, a Family record). They are looked up only
when a model names a family that is not built in, so no third-party code runs until it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pipeline.config import schema, sizes
from pipeline.errors import PodiumError

ENTRY_POINTS = "podium.families"


@dataclass(frozen=True)
class Family:
    name: str
    module: str  # the module holding the builders
    modality: str  # the inputs it reads: image | text | tabular | any (the competition's)
    kind: str  # network (trained by Lightning, fold by fold) | estimator (fit / predict, no Lightning)
    schema: type[schema.ModelBase]  # its model YAML is checked against this dataclass
    probe: bool = False  # user code: one batch goes through the network before any fold trains
    starter: bool = False  # `podium new` lists it in a new competition of its modality
    # Refused at compose time, before any work (pipeline/config/sizes.check_family_keys):
    at_least: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # model key -> least value, and why
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # model key -> its valid values
    config_check: Callable[[Any, Any, str], None] | None = None  # (model, competition, where): other refusals
    # what its builders import beyond Podium's own (a bundle's requirements): a module, pinned as whichever
    # distribution installed it here (xgboost: xgboost-cpu or xgboost), or a distribution's name
    packages: tuple[str, ...] = ()
    not_for: tuple[str, ...] = ()  # modality "any": the modalities it still does not read

    def builders(self) -> ModuleType:
        return import_module(self.module)

    def reads(self, modality: str) -> bool:
        return self.modality in ("any", modality) and modality not in self.not_for


@dataclass(frozen=True)
class EstimatorFold:
    """What an estimator family's fold fits on (rows are texts, flattened images or a typed feature table)."""

    task: str
    train_rows: Any
    target: np.ndarray
    seed: int
    root: Path
    valid_rows: Any = None  # the fold's validation rows, for early stopping (None in a fit without them)
    valid_target: np.ndarray | None = None
    metric: str = ""  # the competition's metric (pipeline/metrics.py): what early stopping watches
    threads: int = 1  # CPU threads the fit may use (data.num_threads, else the cores available)
    accelerator: str = "cpu"  # cpu | gpu (trainer.accelerator): the libraries with a GPU mode use it
    n_classes: int = 0  # classification: the competition's classes (a fold may lack some)
    # a sweep's pruning: (boosting round, validation value) -> whether to stop the fit now (None: no sweep)
    on_iteration: Callable[[int, float], bool] | None = None


BUILT_IN = {
    family.name: family
    for family in (
        Family(
            "cnn",
            "pipeline.models.cnn",
            "image",
            "network",
            schema.CNNConfig,
            starter=True,
            at_least={
                "width": (1, "channels of the first block"),
                "depth": (1, "convolution blocks"),
                "convs_per_block": (1, ""),
                "hidden": (0, "0 for no dense layer before the output"),
            },
            config_check=sizes.check_cnn_fits_images,
        ),
        Family(
            "efficientnet",
            "pipeline.models.efficientnet",
            "image",
            "network",
            schema.EfficientNetConfig,
            starter=True,
            packages=("efficientnet-lite-pytorch",),  # the architecture; its ImageNet weights are not needed to predict
            at_least={
                "input_size": (
                    sizes.EFFICIENTNET_MIN_INPUT,
                    "pixels a side: EfficientNet-Lite0's five stride-2 stages need 32 or more; images are resized to it",
                )
            },
        ),
        Family(
            "tfidf",
            "pipeline.models.tfidf",
            "text",
            "estimator",
            schema.TfidfConfig,
            starter=True,  # seconds per fold: the first baseline of a text competition
            at_least={"min_df": (1, "training texts an n-gram must appear in"), "max_iter": (1, "")},
            config_check=sizes.check_tfidf,
        ),
        Family(
            "lstm",
            "pipeline.models.lstm",
            "text",
            "network",
            schema.LSTMConfig,
            starter=True,
            at_least={
                "max_length": (1, "tokens kept per text"),
                "vocab_size": (1, "words kept; 0 leaves only [UNK]"),
                "embedding_dim": (1, ""),
                "hidden_size": (1, "LSTM units"),
                "layers": (1, ""),
            },
            choices={"pooling": ("last", "max", "mean")},
        ),
        Family(
            "transformer",
            "pipeline.models.transformer",
            "text",
            "network",
            schema.TransformerConfig,
            starter=True,
            at_least={
                "max_length": (
                    3,
                    "room for the tokenizer's special tokens, e.g. [CLS] and [SEP], and a token of "
                    "text; below that the tokenizer does not truncate at all",
                ),
                "freeze_layers": (0, ""),
            },
            choices={"init": ("pretrained", "random")},
            config_check=sizes.check_layerwise_decay,
        ),
        *(
            Family(
                name,
                f"pipeline.models.{name}_trees",
                "tabular",
                "estimator",
                schema.BoostingConfig,
                starter=True,
                packages=(package,),
                at_least={
                    "n_estimators": (1, "boosting rounds"),
                    "early_stopping_rounds": (1, "rounds without improvement before a fold stops; null: never"),
                },
            )
            for name, package in (("lightgbm", "lightgbm"), ("xgboost", "xgboost"), ("catboost", "catboost"))
        ),
        Family(
            "mlp",
            "pipeline.models.mlp",
            "tabular",
            "network",
            schema.MLPConfig,
            starter=True,
            at_least={"embedding_dim": (1, "numbers per category"), "dropout": (0, "")},
        ),
        Family(  # images and texts; a table's network is the mlp family
            "network",
            "pipeline.models.network",
            "any",
            "network",
            schema.NetworkConfig,
            probe=True,
            not_for=("tabular",),
        ),
        Family("estimator", "pipeline.models.estimator", "any", "estimator", schema.EstimatorConfig),
    )
}


def starters(modality: str) -> list[str]:
    """The families `podium new` lists in a new competition of `modality` (each has conf/model/<name>.yaml)."""
    return [f.name for f in BUILT_IN.values() if f.starter and f.reads(modality)]


def family(name: object) -> Family:
    """The family `name` (a model YAML's `family:`), built in or registered by an installed package."""
    if isinstance(name, str) and name in BUILT_IN:
        return BUILT_IN[name]
    registered = _registered()
    if isinstance(name, str) and name in registered:
        return _load(registered[name])
    raise PodiumError(
        f"Invalid configuration: model.family is {name!r}; valid families are {', '.join(family_names())}. "
        f"Set `family:` in the model's file under conf/model/ (your own network: family: network with "
        f"net._target_; a scikit-learn estimator: family: estimator with estimator._target_; a package's "
        f"family: install it, it registers under the entry point group {ENTRY_POINTS})."
    )


def family_names() -> list[str]:
    return [*BUILT_IN, *sorted(set(_registered()) - set(BUILT_IN))]


def _registered() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=ENTRY_POINTS)}


def _load(point) -> Family:
    try:
        record = point.load()
    except Exception as exc:
        raise PodiumError(
            f"Cannot load model family {point.name!r} registered by an installed package ({point.value}, entry "
            f"point group {ENTRY_POINTS}): {type(exc).__name__}: {exc}. Reinstall or fix that package."
        ) from None
    if not isinstance(record, Family) or record.name != point.name:
        raise PodiumError(
            f"The entry point {point.name} = {point.value} (group {ENTRY_POINTS}) must name a "
            f"pipeline.models.Family whose name is {point.name!r}; it gives {record!r}. Fix that package."
        )
    return record
