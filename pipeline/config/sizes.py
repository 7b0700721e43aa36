"""Checks on sizes: counts and dimensions in range, and networks that fit the competition's images.

A zero or negative size fails deep inside torch, or worse trains silently on nothing (an LSTM
vocabulary of 0 words sees only [UNK]); each is refused at compose time, in the style of
`check_ranges`, naming the key, what it must be, and where it is set.
"""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.config.checks import choice, out_of_range
from pipeline.config.schema import CLASS_WEIGHTS, TRUNCATIONS
from pipeline.errors import PodiumError

# EfficientNet-Lite0 halves its input five times (stride-2 stages) with padding fixed for its native
# 224 pixels: measured, 32 pixels a side is the least it accepts (31 fails inside torch's conv2d).
EFFICIENTNET_MIN_INPUT = 32


def check_family_keys(cfg: DictConfig) -> None:
    """The model's keys against what its family's record says (pipeline/models: `Family.at_least`,
    `choices` and `config_check`): one loop for every family, built in or installed."""
    from pipeline.models import family

    model, where = cfg.model, f"conf/model/{cfg.model.name}.yaml"
    record = family(model.family)
    if "max_length" in model and not (model.max_length == "auto" or type(model.max_length) is int):
        out_of_range("model.max_length", model.max_length, "a whole number of tokens, or auto", where)
    for key, (least, why) in record.at_least.items():
        if model[key] is not None and model[key] != "auto" and model[key] < least:  # None: the key's "off"
            out_of_range(f"model.{key}", model[key], f"at least {least}" + (f" ({why})" if why else ""), where)
    for key, valid in record.choices.items():
        choice(model[key], valid, f"model.{key}", where)
    _check_data_choices(model, cfg.competition, where)
    if record.config_check is not None:
        record.config_check(model, cfg.competition, where)


def _check_data_choices(model: DictConfig, comp: DictConfig, where: str) -> None:
    """class_weights and truncation: one of their values, and balanced weights only where there are classes."""
    if "class_weights" in model:
        choice(model.class_weights, CLASS_WEIGHTS, "model.class_weights", where)
        if model.class_weights == "balanced" and comp.task == "regression":
            raise PodiumError(
                f"Invalid configuration: model.class_weights=balanced in {where}, but {comp.name} is a regression: "
                f"there are no classes to weigh. Set model.class_weights=none (or auto, which picks none)."
            )
        if model.class_weights == "balanced" and model.get("loss"):
            raise PodiumError(
                f"Invalid configuration: model.class_weights=balanced in {where} beside the user's loss "
                f"model.loss ({model.loss.get('_target_')}): Podium weighs its own loss only. Pass the weights to "
                f"your loss (e.g. torch.nn.CrossEntropyLoss's weight) and set model.class_weights=none."
            )
    if "truncation" in model:
        choice(model.truncation, TRUNCATIONS, "model.truncation", where)


def check_sizes(cfg: DictConfig) -> None:
    """Trainer, model and image sizes that are zero, negative or otherwise impossible."""
    _check_trainer(cfg.trainer)
    for key in ("grace_period", "heartbeat_interval"):  # Optuna's heartbeats take whole seconds, at least 1
        if cfg.tune[key] < 1:
            out_of_range(f"tune.{key}", cfg.tune[key], "at least 1 second", "conf/config.yaml")
    if cfg.data.num_threads is not None and cfg.data.num_threads < 1:
        out_of_range(
            "data.num_threads", cfg.data.num_threads, "at least 1, or null for the available cores", "conf/config.yaml"
        )
    if cfg.data.num_workers < 0:
        out_of_range(
            "data.num_workers", cfg.data.num_workers, "0 (load in the training process) or more", "conf/config.yaml"
        )
    comp = cfg.competition
    if comp.modality == "image":
        for key in ("height", "width"):
            if comp.image[key] < 1:
                out_of_range(
                    f"competition.image.{key}",
                    comp.image[key],
                    "at least 1 pixel",
                    f"conf/competition/{comp.name}.yaml",
                )
        if comp.image.channels not in (1, 3):
            out_of_range(
                "competition.image.channels",
                comp.image.channels,
                "1 (grey) or 3 (RGB)",
                f"conf/competition/{comp.name}.yaml",
            )
        _check_image_store(cfg)


def _check_image_store(cfg: DictConfig) -> None:
    """The image data path's settings: a known fit and store, a disk cache no smaller than the network's input."""
    from pipeline.data.image_fit import FITS
    from pipeline.data.image_store import STORES

    image, where = cfg.competition.image, f"conf/competition/{cfg.competition.name}.yaml"
    choice(image.fit, FITS, "competition.image.fit", where)
    choice(image.store, STORES, "competition.image.store", where)
    side, needed = cfg.data.image_cache_side, max(image.height, image.width)
    if side is not None and side < needed and image.store != "cache":  # the disk cache serves streamed images only
        out_of_range(
            "data.image_cache_side",
            side,
            f"at least the network's input side, {needed} (competition.image), or null for no disk cache",
            "conf/config.yaml",
        )
    if cfg.augment.get("items"):  # built now (albumentations and torch, ~2 s to import): a bad list fails first
        from pipeline.training.image_data import build_items

        items = build_items(cfg.augment, image)
        # the plain CNN's dense head is sized for competition.image; other networks take any size
        if items is not None and cfg.model.get("family") == "cnn" and tuple(items.size) != (image.height, image.width):
            raise PodiumError(
                f"augment.items train at {items.size[0]}x{items.size[1]} pixels, but model={cfg.model.name} (cnn) has "
                f"a dense head sized for competition.image, {image.height}x{image.width}, and takes no other size. "
                f"Make the last crop or resize of augment.items output [{image.height}, {image.width}] (conf/augment/)."
            )
    if cfg.data.image_memory_gb is not None and cfg.data.image_memory_gb <= 0:
        out_of_range(
            "data.image_memory_gb", cfg.data.image_memory_gb, "more than 0, or null for RAM / 4", "conf/config.yaml"
        )


def _check_trainer(trainer: DictConfig) -> None:
    devices = trainer.devices
    # An int counts devices (-1: every visible GPU); a list or a string names them, "auto" picks.
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 and devices != -1:
        out_of_range(
            "trainer.devices",
            devices,
            "a positive number of devices, -1 for every visible GPU, or auto",
            "conf/trainer/",
        )
    if trainer.num_nodes < 1:
        out_of_range("trainer.num_nodes", trainer.num_nodes, "at least 1 machine", "conf/trainer/")
    if trainer.accumulate_grad_batches < 1:
        out_of_range(
            "trainer.accumulate_grad_batches",
            trainer.accumulate_grad_batches,
            "at least 1 batch per step",
            "the model's file under conf/model/ (accumulate_grad_batches) or conf/trainer/",
        )


def check_tfidf(model: DictConfig, comp: DictConfig, where: str) -> None:
    """TF-IDF's n-gram range, vocabulary cap and regularisation."""
    if model.max_features is not None and model.max_features < 1:
        out_of_range("model.max_features", model.max_features, "at least 1, or null for no limit", where)
    ngrams = list(model.ngram_range)
    if len(ngrams) != 2 or not 1 <= ngrams[0] <= ngrams[1]:
        out_of_range(
            "model.ngram_range",
            ngrams,
            "[shortest, longest] n-gram lengths, 1 <= shortest <= longest, e.g. [1, 2]",
            where,
        )
    if not model.C > 0:
        out_of_range("model.C", model.C, "a positive inverse regularisation strength, e.g. 4.0", where)


def cnn_min_image_size(depth: int) -> int:
    """The least height and width a CNN of `depth` blocks accepts: each block ends with a 2x2
    max-pooling (pipeline/models/cnn.py), which halves the image, rounding down, and must leave a pixel."""
    return 2**depth


def check_layerwise_decay(model: DictConfig, comp: DictConfig, where: str) -> None:
    """A Transformer's layer-wise learning-rate decay must be a positive factor."""
    if not model.layerwise_lr_decay > 0:
        out_of_range("model.layerwise_lr_decay", model.layerwise_lr_decay, "a positive factor (1 = off)", where)


def check_cnn_fits_images(model: DictConfig, comp: DictConfig, where: str) -> None:
    """Refuse a CNN deeper than the competition's images allow (torch would fail building it)."""
    if comp.modality != "image":
        return  # another modality's competition is refused by check_model_fits, with the models that fit
    side = min(comp.image.height, comp.image.width)
    if side < cnn_min_image_size(model.depth):
        deepest = side.bit_length() - 1  # the largest d with 2**d <= side
        out_of_range(
            "model.depth",
            model.depth,
            f"at most {deepest} for the competition's {comp.image.height}x{comp.image.width} images (each block halves "
            f"them, so depth {model.depth} needs images of at least {cnn_min_image_size(model.depth)}x"
            f"{cnn_min_image_size(model.depth)} pixels: competition.image.height and width, with resize: true)",
            where,
        )
