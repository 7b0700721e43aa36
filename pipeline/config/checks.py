"""Checks on a composed config's values: required keys set, names among their choices, numbers in range.

Each failure is a PodiumError naming the key, the file it comes from and the valid values.
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from pipeline.config import schema
from pipeline.errors import PodiumError

# What Lightning's Trainer(precision=...) accepts, and `auto` (pipeline/config/precision.py picks one per machine).
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16", "bf16", "64")


def check_missing(cfg: DictConfig | dict) -> None:
    """Refuse a config with `???` values, naming them all. A plain dict (the unresolved config) is
    searched without resolving interpolations, which stop at the first missing value they meet."""
    missing = sorted(_missing_paths(cfg) if isinstance(cfg, dict) else OmegaConf.missing_keys(cfg))
    if missing:
        raise PodiumError(
            f"Invalid configuration: required value(s) {', '.join(missing)} not set. "
            f"Set them in the config file of their group under conf/, or on the command line (key=value)."
        )


# Trainer flags Podium sets itself (its logger, callbacks, checkpoint writer): a config may not.
PODIUM_TRAINER_FLAGS = (
    "logger",
    "callbacks",
    "plugins",
    "enable_checkpointing",
    "enable_model_summary",
    "num_sanity_val_steps",
    "default_root_dir",
)


def lightning_flags(trainer: dict) -> dict:
    """Pop the keys of a plain `trainer` section that the schema does not list, and return them once
    checked against lightning.pytorch.Trainer's own arguments: any Trainer flag is reachable as
    `+trainer.<flag>=...`, and a misspelt one is refused with the nearest names."""
    from dataclasses import fields

    known = {f.name for f in fields(schema.TrainerConfig)}
    extra = {k: trainer.pop(k) for k in list(trainer) if k not in known}
    if not extra:
        return {}
    import difflib
    import inspect

    from lightning.pytorch import Trainer  # only when a config uses a flag beyond the schema's

    accepted = sorted(set(inspect.signature(Trainer.__init__).parameters) - {"self"})
    for key in extra:
        if key in PODIUM_TRAINER_FLAGS:
            raise PodiumError(
                f"Invalid configuration: trainer.{key} is set by Podium itself (its MLflow logging, "
                f"checkpoints and progress bars). Remove it from the config and the command line."
            )
        if key not in accepted:
            near = difflib.get_close_matches(key, accepted, n=3)
            raise PodiumError(
                f"Invalid configuration at `trainer.{key}`: not a flag of lightning.pytorch.Trainer"
                + (f" (did you mean {', '.join(near)}?)" if near else "")
                + ". Any Trainer flag can be set as +trainer.<flag>=value."
            )
    return extra


def _missing_paths(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _missing_paths(v, f"{prefix}{k}.")]
    return [prefix[:-1]] if node == "???" else []


def choice(value: object, valid: Sequence[str], key: str, where: str) -> None:
    if value not in valid:
        raise PodiumError(
            f"Invalid configuration: {key} is {value!r}; valid values are {', '.join(map(str, valid))}. "
            f"Fix it in {where} or override it ({key}=...)."
        )


def check_choices(cfg: DictConfig) -> None:
    from pipeline.metrics import METRICS

    comp = cfg.competition
    where = f"conf/competition/{comp.name}.yaml"
    choice(comp.task, schema.TASKS, "competition.task", where)
    choice(comp.modality, schema.MODALITIES, "competition.modality", where)
    choice(comp.metric, sorted(METRICS), "competition.metric", where)
    for name in comp.report_metrics:
        choice(name, sorted(METRICS), "competition.report_metrics", where)
    choice(comp.cv.scheme, schema.CV_SCHEMES, "competition.cv.scheme", where)
    choice(comp.submission.format, schema.SUBMISSION_FORMATS, "competition.submission.format", where)
    choice(comp.target.transform, schema.TARGET_TRANSFORMS, "competition.target.transform", where)
    if comp.target.transform == "log1p" and "rmsle" in (comp.metric, *comp.report_metrics):
        raise PodiumError(
            f"Invalid configuration: competition.target.transform is log1p and the metric rmsle takes log1p again: "
            f"every score would be of log(1 + log(1 + y)). RMSLE is RMSE on log1p: use metric: rmse with "
            f"transform: log1p (scores in log space, as House Prices' metric), or rmsle with transform: none, in {where}."
        )
    if comp.target.transform != "none" and comp.task != "regression":
        raise PodiumError(
            f"Invalid configuration: competition.target.transform is {comp.target.transform!r}, but only a "
            f"regression target can be transformed ({comp.name} is {comp.task}). Remove it from {where}."
        )
    ens = cfg.ensemble
    choice(ens.method, schema.ENSEMBLE_METHODS, "ensemble.method", "conf/ensemble/")
    for name in ens.candidates:
        choice(name, schema.ENSEMBLE_METHODS[1:], "ensemble.candidates", "conf/ensemble/auto.yaml")
    choice(ens.seeds, schema.ENSEMBLE_SEEDS, "ensemble.seeds", "conf/ensemble/auto.yaml")
    choice(ens.hill_climb.init, schema.HILL_CLIMB_INITS, "ensemble.hill_climb.init", "conf/ensemble/auto.yaml")
    choice(ens.weighted.solver, schema.WEIGHTED_SOLVERS, "ensemble.weighted.solver", "conf/ensemble/auto.yaml")
    choice(cfg.tta.merge, schema.TTA_MERGES, "tta.merge", "conf/tta/")
    choice(cfg.tune.pruner.name, schema.PRUNERS, "tune.pruner.name", "conf/config.yaml")
    choice(cfg.tune.sampler.name, schema.SAMPLERS, "tune.sampler.name", "conf/config.yaml")
    metric = METRICS[comp.metric]
    if comp.direction != metric.direction:
        raise PodiumError(
            f"Invalid configuration: competition.direction is {comp.direction!r} but metric "
            f"{comp.metric} is to {metric.direction}. Fix `direction:` in {where}."
        )
    if metric.task not in ("any", comp.task) and not (metric.task == "classification" and comp.task != "regression"):
        raise PodiumError(
            f"Invalid configuration: metric {comp.metric} does not apply to a {comp.task} task. "
            f"Choose another `metric:` in {where}."
        )
    if comp.task != "regression":
        if len(comp.classes) < 2 or len(set(comp.classes)) != len(comp.classes):
            raise PodiumError(
                f"Invalid configuration: competition.classes must list at least two distinct class "
                f"names for a {comp.task} task (got {list(comp.classes)}). Fix `classes:` in {where}."
            )
        if comp.task == "binary" and len(comp.classes) != 2:
            raise PodiumError(
                f"Invalid configuration: a binary task has exactly two classes, {where} lists "
                f"{len(comp.classes)}. Use task: multiclass, or list two classes (negative first)."
            )
    if comp.cv.n_splits < 2:
        raise PodiumError(
            f"Invalid configuration: competition.cv.n_splits must be at least 2 (got {comp.cv.n_splits}): "
            f"K-fold training needs other folds to train on. Fix `cv.n_splits` in {where} or override it."
        )
    if comp.cv.scheme in ("stratified_group", "group") and not comp.cv.group_column:
        raise PodiumError(
            f"Invalid configuration: cv scheme {comp.cv.scheme} needs competition.cv.group_column, "
            f"the train.csv column holding the groups. Set it in {where}."
        )


def check_ranges(cfg: DictConfig) -> None:
    """Numbers that would fail (or silently misbehave) deep inside training."""
    model, where = cfg.model, f"conf/model/{cfg.model.name}.yaml"
    optimizer: DictConfig = model.get("optimizer") or OmegaConf.create({})
    if "lr" in optimizer and not optimizer.lr > 0:
        out_of_range("model.optimizer.lr", optimizer.lr, "a positive learning rate, e.g. 3e-4", where)
    if "batch_size" in model and model.batch_size < 1:
        out_of_range("model.batch_size", model.batch_size, "at least 1", where)
    if "dropout" in model and not 0 <= model.dropout < 1:
        out_of_range("model.dropout", model.dropout, "a probability in [0, 1)", where)
    if cfg.trainer.max_epochs is not None and cfg.trainer.max_epochs < 1:
        out_of_range(
            "trainer.max_epochs", cfg.trainer.max_epochs, "at least 1", "conf/trainer/ or the model's max_epochs"
        )
    if str(cfg.trainer.precision) not in PRECISIONS:
        out_of_range("trainer.precision", cfg.trainer.precision, f"one of {', '.join(PRECISIONS[:7])}", "conf/trainer/")
    if cfg.data.limit_train_rows is not None and cfg.data.limit_train_rows < 2 * cfg.competition.cv.n_splits:
        out_of_range(
            "data.limit_train_rows",
            cfg.data.limit_train_rows,
            f"at least 2 rows per fold ({2 * cfg.competition.cv.n_splits}), or null for all rows",
            "conf/config.yaml",
        )


def check_scaling(cfg: DictConfig) -> None:
    """Speed and multi-process settings Podium cannot honour."""
    strategy = str(cfg.trainer.strategy)
    # Spawned processes return only rank 0's results to the launching process, and pickle the
    # model to get there; Podium runs the whole command in every process and gathers itself.
    if any(word in strategy for word in ("spawn", "fork", "notebook")):
        raise PodiumError(
            f"Invalid configuration: trainer.strategy={strategy} starts training processes from inside the "
            f"command, which Podium does not support: every process must run the whole command so that "
            f"out-of-fold predictions are gathered by row. Use trainer.strategy=ddp (Lightning launches the other "
            f"processes itself), or launch with torchrun or SLURM (README, Scaling up)."
        )
    if cfg.trainer.get("sync_batchnorm") and cfg.trainer.accelerator == "cpu":
        raise PodiumError(
            "Invalid configuration: trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm runs on CUDA "
            "only), and trainer.accelerator=cpu. Add trainer.sync_batchnorm=false to try DDP on CPU."
        )
    devices, nodes = cfg.trainer.devices, cfg.trainer.num_nodes
    if isinstance(devices, int) and devices > 0 and "batch_size" in cfg.model:
        # known here when devices is a count; otherwise checked once training starts (fold.py)
        check_batch_split(
            cfg.model.batch_size, devices * nodes, f"trainer.devices={devices} x trainer.num_nodes={nodes}"
        )
    if cfg.train.channels_last and cfg.competition.modality != "image":
        raise PodiumError(
            f"Invalid configuration: train.channels_last=true applies to image models, and "
            f"{cfg.competition.name} is a {cfg.competition.modality} competition. Remove the override."
        )


def check_batch_split(batch_size: int, processes: int, made_of: str) -> None:
    """`model.batch_size` is the global batch: each of the training processes gets an equal part."""
    if processes > 1 and batch_size % processes:
        raise PodiumError(
            f"Invalid configuration: model.batch_size={batch_size} is the global batch size, split evenly across the "
            f"{processes} training processes ({made_of}), and does not divide by {processes}. Set model.batch_size "
            f"to a multiple of {processes}."
        )


def out_of_range(key: str, value: object, wanted: str, where: str) -> None:
    raise PodiumError(
        f"Invalid configuration: {key}={value} is out of range; it must be {wanted}. Fix it in {where} or override it ({key}=...)."
    )
