"""Compose the Hydra config from `conf/` and validate it before any work starts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from pipeline.config import precision, schema
from pipeline.config.checks import check_choices, check_missing, check_ranges, check_scaling, lightning_flags
from pipeline.config.files import check_class_names, check_competition_name, yaml_error, yaml_message
from pipeline.config.sizes import check_family_keys, check_sizes
from pipeline.config.unknown_key import unknown_key_message
from pipeline.errors import PodiumError

ROOT_ENV = "PODIUM_ROOT"


def find_root(start: Path | None = None) -> Path:
    """The project root: $PODIUM_ROOT, or the nearest folder upwards holding conf/config.yaml."""
    if os.environ.get(ROOT_ENV):
        root = Path(os.environ[ROOT_ENV]).resolve()
        if not (root / "conf" / "config.yaml").is_file():
            raise PodiumError(f"{ROOT_ENV}={root} has no conf/config.yaml. Point it at a Podium project.")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    raise PodiumError(
        f"No Podium project here: no conf/config.yaml in {here} or any folder above it. "
        f"Run podium inside a project checkout, or set {ROOT_ENV} to one."
    )


def compose(overrides: Sequence[str] = (), root: Path | None = None) -> DictConfig:
    """Compose conf/config.yaml with Hydra `overrides`, resolve it and check it against the schema.

    Returns a typed, fully resolved config whose `paths.root` is the absolute project root.
    The best parameters `podium tune` wrote for this competition and model (see
    pipeline/config/tuned.py) are applied first unless `train.tuned=false`; `overrides` win.
    Raises PodiumError naming the offending key and its valid choices.
    """
    root = root or find_root()
    cfg = validate(_compose_raw(root, overrides))
    tuned = _tuned_overrides(cfg, root, overrides)
    if tuned:
        try:
            cfg = validate(_compose_raw(root, [*tuned, *overrides]))
        except PodiumError as exc:
            raise PodiumError(
                f"The tuned parameters in {_tuned_path(cfg, root)} no longer fit the config: {exc} "
                f"Rerun `podium tune`, edit or empty the file, or pass train.tuned=false."
            ) from None
        cfg.train.tuned_from = str(_tuned_path(cfg, root).relative_to(root))
    cfg.paths.root = str(root)
    return cfg


def _compose_raw(root: Path, overrides: Sequence[str]) -> DictConfig:
    """Hydra's composition of conf/ with `overrides`, without its `hydra` node, its files checked."""
    raw, choices = _compose_with_choices(root, overrides)
    check_competition_name(plain_dict(raw), choices.get("competition"), overrides)
    return raw


def _compose_with_choices(root: Path, overrides: Sequence[str]) -> tuple[DictConfig, dict]:
    """`_compose_raw`'s composition, with Hydra's choice per config group."""
    import yaml
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3"):
            # First without `model.<key>=` overrides: they are meant for the model this compose picks (with no
            # `model=`, the competition's first), not for conf/config.yaml's default, which may lack the key.
            probe = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith("model.")]
            raw, choices = _hydra_compose(probe)
            default = _default_model(raw, overrides)
            own = _competition_overrides(raw, overrides, _experiment_keys(root, choices.get("experiment")))
            if default or own or len(probe) < len(overrides):  # the competition's settings, a default model
                raw, choices = _hydra_compose([*own, *([f"model={default}"] if default else []), *overrides])
    except (yaml.YAMLError, HydraException) as exc:  # a syntax error in a file under conf/, raised or wrapped by Hydra
        cause = yaml_error(exc)
        if cause:
            raise PodiumError(yaml_message(cause, root)) from None
        if not isinstance(exc, HydraException):
            raise PodiumError(f"Invalid YAML under conf/: {exc}") from None
        unknown = unknown_key_message(str(exc), overrides, lambda others: _compose_with_choices(root, others))
        raise PodiumError(unknown or _hydra_message(exc, root)) from None
    except OmegaConfBaseException as exc:
        raise PodiumError(_schema_message(exc)) from None
    return raw, choices


def plain_dict(node: DictConfig, resolve: bool = False) -> dict[str, Any]:
    """A config mapping as plain Python containers (interpolations left as written unless `resolve`)."""
    plain = OmegaConf.to_container(node, resolve=resolve)
    assert isinstance(plain, dict), f"expected a mapping, got {type(plain).__name__}"
    return cast(dict[str, Any], plain)


def _hydra_compose(overrides: Sequence[str]) -> tuple[DictConfig, dict]:
    """The composed config and Hydra's choice per config group (the file each group's option names).

    The choices live in the `hydra` node, which is dropped so the config is the one Hydra returns
    without it.
    """
    from hydra import compose as hydra_compose

    raw = hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    choices = plain_dict(raw.hydra.runtime.choices)
    with open_dict(raw):
        del raw["hydra"]
    return raw, choices


def _tuned_path(cfg: DictConfig, root: Path) -> Path:
    from pipeline.config.tuned import tuned_file

    return tuned_file(root, cfg.paths.competitions, cfg.competition.name, cfg.model.name)


def _tuned_overrides(cfg: DictConfig, root: Path, overrides: Sequence[str]) -> list[str]:
    """The tuned file's overrides for this competition and model, less the keys the user set."""
    from pipeline.config.tuned import config_groups, key_of, read_tuned, to_overrides

    if not cfg.train.tuned:
        return []
    params = read_tuned(_tuned_path(cfg, root))
    given = {key_of(o) for o in overrides}
    return to_overrides({k: v for k, v in params.items() if k not in given}, config_groups(root / "conf"))


def _competition_overrides(raw: DictConfig, overrides: Sequence[str], experiment: set[str]) -> list[str]:
    """The competition's `overrides:` (e.g. tta=flip), less those whose key the command line or the chosen
    experiment sets: both are the user's choice for this run, so both win over the competition's default."""
    own = [str(o) for o in raw.competition.get("overrides") or []]
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides} | experiment
    overlaps = lambda key: any(key == g or key.startswith(g + ".") or g.startswith(key + ".") for g in given)  # noqa: E731
    return [o for o in own if not overlaps(o.split("=", 1)[0].lstrip("+~"))]


def _experiment_keys(root: Path, name: str | None) -> set[str]:
    """The keys and config groups conf/experiment/<name>.yaml sets (`trainer.max_epochs`, `tta`)."""
    import yaml

    if not name:
        return set()
    content = yaml.safe_load((root / "conf" / "experiment" / f"{name}.yaml").read_text()) or {}
    keys = set()
    for entry in content.pop("defaults", None) or []:  # `- override /tta: none` picks group tta
        for key in entry if isinstance(entry, dict) else ():
            keys.add(key.split()[-1].strip("/").split("@")[0])

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value:
                walk(value, f"{prefix}{key}.")
            else:
                keys.add(f"{prefix}{key}")

    walk(content, "")
    return keys


def _default_model(raw: DictConfig, overrides: Sequence[str]) -> str | None:
    """The competition's first model, when no `model=` was given and the default does not fit.

    conf/config.yaml defaults to an image model; `podium train competition=rotten-tomatoes`
    then trains the text competition's first listed model instead of failing.
    """
    from pipeline.models import BUILT_IN

    chosen = any(o.split("=", 1)[0].lstrip("+~") == "model" for o in overrides)
    family = BUILT_IN.get(raw.model.get("family"))  # the root config's default is a built-in family
    models = raw.competition.get("models") or []
    if chosen or not models or family is None or family.reads(raw.competition.get("modality", "image")):
        return None
    return models[0]


def validate(raw: DictConfig) -> DictConfig:
    """Merge into the typed schema, resolve interpolations, and check values against their choices.

    Merging before resolving lets an interpolation such as `${model.max_epochs}` see the schema's
    default when a model's YAML leaves the key out.
    """
    try:
        plain = plain_dict(raw)
        check_missing(plain)  # every `???` at once (resolving below stops at the first one an interpolation meets)
        check_class_names(plain.get("competition") or {})  # as YAML read them, before the schema makes them strings
        model_raw = plain.pop("model", None) or {}
        trainer_extra = lightning_flags(plain.get("trainer") or {})
        cfg = cast(DictConfig, OmegaConf.merge(OmegaConf.structured(schema.Config), plain))
        from pipeline.models import family

        model_schema = family(model_raw.get("family")).schema
        try:
            model = OmegaConf.merge(OmegaConf.structured(model_schema), model_raw)
        except OmegaConfBaseException as exc:
            exc.full_key = f"model.{getattr(exc, 'full_key', '') or '?'}"
            raise
        OmegaConf.set_struct(cfg, False)
        cfg.model = model
        OmegaConf.set_struct(cfg, True)
        with open_dict(cfg.trainer):  # Lightning flags beyond the schema's, checked above
            cfg.trainer.update(trainer_extra)
        OmegaConf.resolve(cfg)
        check_missing(cfg)
        if cfg.train.seeds is None and cfg.model.name in cfg.competition.seeds:  # the competition's recipe
            cfg.train.seeds = cfg.competition.seeds[cfg.model.name]
    except OmegaConfBaseException as exc:
        raise PodiumError(_schema_message(exc)) from None
    check_choices(cfg)
    check_ranges(cfg)
    cfg.trainer.precision = precision.resolve(str(cfg.trainer.precision), str(cfg.trainer.accelerator))
    check_sizes(cfg)
    check_family_keys(cfg)  # after the image sizes: a CNN's depth is checked against valid ones
    check_scaling(cfg)
    return cfg


def _hydra_message(exc: Exception, root: Path) -> str:
    text = " ".join(str(exc).split())
    if "Could not find" in text and "Available options" in text:
        # "In 'config': Could not find 'model/foo' Available options in 'model': cnn efficientnet"
        head, _, options = text.partition("Available options in")
        group, _, names = options.partition(":")
        names = names.split("Config search path")[0]
        return (
            f"Unknown config option: {head.split('Could not find')[-1].strip()} does not exist. "
            f"Valid choices for {group.strip()}: {', '.join(names.split())}. "
            f"Options are the YAML files in {root / 'conf' / group.strip().strip(chr(39))}/."
        )
    return f"Invalid configuration or override: {text}"


def _schema_message(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or "?"
    msg = getattr(exc, "msg", None) or str(exc).splitlines()[0]
    msg = msg.split("\n")[0].rstrip(".")
    valid = _valid_keys(exc) if "not in" in msg else None
    hint = f" Valid keys there: {', '.join(valid)}." if valid else ""
    return (
        f"Invalid configuration at `{key}`: {msg}.{hint} Fix that key in its YAML file under conf/ or "
        f"in your override; `podium config` prints the whole composed config."
    )


def _valid_keys(exc: OmegaConfBaseException) -> list[str] | None:
    """The keys of the schema the offending key was checked against."""
    import dataclasses

    node = getattr(exc, "object_type", None)
    return [f.name for f in dataclasses.fields(node)] if node is not None and dataclasses.is_dataclass(node) else None


def check_model_fits(cfg: DictConfig) -> None:
    """Refuse a model whose inputs are not the competition's (an image model on a text competition)."""
    from pipeline.models import BUILT_IN, family

    comp = cfg.competition
    wanted = family(cfg.model.family)
    if not wanted.reads(comp.modality):
        fitting = sorted(
            p.stem
            for p in (Path(cfg.paths.root) / "conf" / "model").glob("*.yaml")
            if _family_of(p) in {f for f, fam in BUILT_IN.items() if fam.modality == comp.modality}
        )
        raise PodiumError(
            f"Invalid configuration: model={cfg.model.name} ({cfg.model.family}) reads "
            f"{wanted.modality if wanted.modality != 'any' else 'image and text'} inputs but "
            f"competition={comp.name} is a {comp.modality} competition. Choose a {comp.modality} model: "
            f"{', '.join(fitting) or 'none defined under conf/model/'} (e.g. model={fitting[0] if fitting else '...'})."
        )
    if comp.modality == "image" and wanted.kind == "estimator" and comp.image.store == "stream":
        raise PodiumError(
            f"Invalid configuration: model={cfg.model.name} ({cfg.model.family}) fits on every image's pixels in "
            f"memory at once, but competition.image.store=stream keeps the images of {comp.name} in their files. "
            f"Train a network on them, or set competition.image.store=cache (with a competition.image size whose "
            f"decoded images fit in memory)."
        )


def _family_of(model_file: Path) -> str | None:
    """The `family:` of a model config file, following its defaults list (`- transformer`)."""
    import yaml

    try:
        content = yaml.safe_load(model_file.read_text()) or {}
    except yaml.MarkedYAMLError as exc:
        raise PodiumError(yaml_message(exc, model_file.parents[2])) from None
    if "family" in content:
        return content["family"]
    parents = [d for d in content.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    return next((f for f in (_family_of(model_file.with_name(f"{p}.yaml")) for p in parents) if f), None)
