"""Search spaces: `tune.search_space` parsed, checked, and sampled into Hydra overrides.

A space mirrors the config: each leaf holding a `type` is a parameter, its path the config key
(or a config group such as `augment`) it sets:
    model:
      optimizer:
        lr: {type: float, low: 3.0e-4, high: 1.0e-2, log: true}
        _target_: {type: categorical, choices: [torch.optim.AdamW, torch.optim.SGD]}
        momentum: {type: float, low: 0.8, high: 0.97, when: {model.optimizer._target_: torch.optim.SGD}}
      depth: {type: int, low: 2, high: 4}
    augment: {type: categorical, choices: [none, flip_shift]}
Nested rather than dotted keys, so the command line can reshape a space like any config
(`tune.search_space.model.optimizer.lr.high=0.02`, `~tune.search_space.augment`). Each trial
samples the parameters whose `when` holds (define-by-run) and sets each with one override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PodiumError

TYPES = ("float", "int", "categorical")
KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
# Keys that change the folds or the rows: trials would no longer be scored on the same data.
FIXED_PREFIXES = ("competition.", "data.", "tune.", "paths.", "tracking.", "out_dir", "seed", "train.")


@dataclass(frozen=True)
class Param:
    key: str  # a config key (model.optimizer.lr) or a config group (augment)
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    when: Mapping[str, tuple] = field(default_factory=dict)  # other key -> the values that enable this one

    def active(self, sampled: Mapping[str, Any]) -> bool:
        return all(key in sampled and sampled[key] in values for key, values in self.when.items())

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.key, list(self.choices))

    def extremes(self) -> list[Any]:
        """Values that probe the config: every choice; both ends of a range (and, for floats, a
        value between them, which an integer key refuses)."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return [self.low, self.high]
        middle = (self.low * self.high) ** 0.5 if self.log else (self.low + self.high) / 2
        return [float(self.low), middle + 1e-3 * (self.high - middle), float(self.high)]  # nudged off a whole number


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]

    def sample(self, trial) -> dict[str, Any]:
        """The trial's parameter values, in space order; a conditional one only when its `when` holds."""
        sampled: dict[str, Any] = {}
        for param in self.params:
            if param.active(sampled):
                sampled[param.key] = param.suggest(trial)
        return sampled

    def describe(self) -> dict[str, str]:
        return {
            p.key: (
                f"{p.type} {p.low}..{p.high}{' log' if p.log else ''}"
                if p.type != "categorical"
                else f"one of {list(p.choices)}"
            )
            + (f" when {dict(p.when)}" if p.when else "")
            for p in self.params
        }


def parse_space(raw: Mapping[str, Any], where: str) -> SearchSpace:
    """Check every spec of `raw` (the `tune.search_space` mapping) and return the space.

    Refuses, naming the key and `where` it is defined: an unknown type or spec key, low > high,
    a log range that is not positive, empty or non-scalar choices, a `when` on a key that is not
    an earlier parameter, and keys that would change the data every trial is scored on.
    """
    if not raw:
        raise PodiumError(
            f"No search space: {where} defines no tune.search_space. Add parameters there "
            f"(format in conf/tune/cnn.yaml) or pass them as +tune.search_space.<key>={{...}}."
        )
    params: list[Param] = []
    for key, spec in _leaves(raw):
        params.append(_param(key, spec, {p.key: p for p in params}, where))
    return SearchSpace(tuple(params))


def _leaves(node: Mapping[str, Any], prefix: str = ""):
    """(dotted key, spec) of every parameter: a mapping with a `type`, or anything that is not a mapping."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and "type" not in value and value:
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _param(key: str, spec: Any, earlier: Mapping[str, Param], where: str) -> Param:
    def fail(problem: str) -> PodiumError:
        return PodiumError(f"Invalid search space in {where}, parameter `{key}`: {problem}")

    if key.startswith(FIXED_PREFIXES):
        raise fail(
            f"{key.split('.')[0]} settings are fixed for a study (they change the rows, folds or "
            f"bookkeeping every trial is scored on). Set them on the command line instead."
        )
    if not isinstance(spec, Mapping) or spec.get("type") not in TYPES:
        raise fail(f"needs `type:` float, int or categorical (got {spec!r}).")
    kind = spec["type"]
    unknown = set(spec) - KEYS[kind] - {"type", "when"}
    if unknown:
        raise fail(
            f"unknown spec key(s) {', '.join(sorted(unknown))} for type {kind}; valid: {', '.join(sorted(KEYS[kind] | {'when'}))}."
        )
    when = {}
    for other, values in (spec.get("when") or {}).items():
        if other not in earlier:
            raise fail(f"`when` refers to {other!r}, which is not a parameter listed before it.")
        when[other] = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise fail("`choices` must be a non-empty list.")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise fail('choices must be numbers, strings, booleans or null (write a list as the text "[1,2]").')
        if len(set(map(repr, choices))) != len(choices):
            raise fail(f"`choices` repeats a value: {list(choices)}.")
        return Param(key, kind, choices=tuple(choices), when=when)
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
    number = int if kind == "int" else (int, float)
    if not all(isinstance(v, number) and not isinstance(v, bool) for v in (low, high)):
        raise fail(
            f"`low` and `high` must both be {'integers' if kind == 'int' else 'numbers'} (got {low!r}, {high!r})."
        )
    if low > high:
        raise fail(f"low {low} is above high {high}.")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise fail(f"a log range must be positive (low is {low}).")
    if step is not None and (step <= 0 or log):
        raise fail("`step` must be positive, and cannot be combined with `log`.")
    return Param(key, kind, low, high, log, step, when=when)
