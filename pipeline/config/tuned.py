"""The tuned-parameters file: where `podium tune` hands its best parameters to training.

`competitions/<competition>/tuned/<model>.yaml` holds an `overrides:` mapping of config keys (or
config groups) to values. `compose()` applies it before the command line's overrides, so
`podium train` and every `dvc repro` train with the tuned values by default; the train stages
list the file as a DVC params dependency, so a new best reruns exactly that model's stages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import PodiumError

_PLAIN = re.compile(r"^[\w.\-/:\[\],]+$")  # written as-is in an override (lists like [1,2] included)


def tuned_file(root: Path, competitions: str, competition: str, model: str) -> Path:
    return Path(root) / competitions / competition / "tuned" / f"{model}.yaml"


def override_value(value: Any) -> str:
    """A parameter value as Hydra override text: 0.003, true, null, torch.optim.SGD, [1,2]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text):
        return text  # strings are Hydra override values: `[1,2]` is a list, `none` a group option
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_overrides(params: Mapping[str, Any], groups: Sequence[str]) -> list[str]:
    """Hydra overrides setting each parameter: `group=option` for a config group, else `++key=value`.

    `++` sets a key whether or not the composed config has it yet (an SGD-only `momentum`).
    """
    return [
        f"{key}={override_value(v)}" if key in groups else f"++{key}={override_value(v)}" for key, v in params.items()
    ]


def config_groups(conf_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(conf_dir).iterdir() if p.is_dir())


def read_tuned(path: Path) -> dict[str, Any]:
    """The `overrides` mapping of a tuned file (empty when the file is absent or lists none)."""
    import yaml

    if not path.is_file():
        return {}
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PodiumError(
            f"{path} is not valid YAML ({exc}). Fix it, delete it, or rerun `podium tune` to rewrite it."
        ) from None
    overrides = content.get("overrides") if isinstance(content, dict) else None
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise PodiumError(
            f"{path}: `overrides` must map config keys to values (got {type(overrides).__name__}). "
            f"Fix it, or rerun `podium tune` to rewrite it."
        )
    return dict(overrides)


def key_of(override: str) -> str:
    """The key an override sets: `++model.lr=1` -> `model.lr`, `augment=none` -> `augment`."""
    return override.split("=", 1)[0].lstrip("+~")


def write_tuned(path: Path, params: Mapping[str, Any], header: str, record: Mapping[str, Any]) -> None:
    """Write the tuned file atomically: a comment header, where the values come from, and `overrides`."""
    import yaml

    from pipeline import io

    body = yaml.safe_dump({**record, "overrides": dict(params)}, sort_keys=False, default_flow_style=False)
    io.write_text(path, "".join(f"# {line}\n" for line in header.splitlines()) + body)


EMPTY_HEADER = (
    "Best parameters of {model} on {competition}, written by `podium tune competition={competition} model={model}`.\n"
    "`podium train` and `dvc repro` apply `overrides` by default (train.tuned=false ignores them;\n"
    "an override on the command line wins). Empty: not tuned yet."
)
