"""Checks on the conf/ files as written: YAML syntax, a competition's name, class names as YAML read them.

They run on what Hydra composed, before the typed schema converts anything: after the merge a
boolean class `true` is already the string 'True' and the mistake can no longer be seen.
Each failure is a PodiumError naming the file (and line and column, or key) and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PodiumError

# Fixes for the YAML mistakes people make most, keyed by a phrase of PyYAML's `problem`.
YAML_FIXES = {
    "'\\t'": "Indent with spaces, not tabs: YAML does not allow tab characters in indentation.",
    "duplicate key": "Remove one of the two entries (YAML keeps one value per key).",
    "mapping values are not allowed": "Quote a value that holds ': ', e.g. note: 'a: b'.",
}
YAML_FIX = "Fix the YAML syntax there: close any open bracket or quote, and check the indentation."


def yaml_error(exc: BaseException | None) -> BaseException | None:
    """The PyYAML syntax error (a MarkedYAMLError) behind `exc`, following its causes, if any."""
    import yaml

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, yaml.MarkedYAMLError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def yaml_message(exc, root: Path) -> str:
    """One paragraph for a YAML syntax error: the file, line and column (1-based) and the fix."""
    mark = exc.problem_mark or exc.context_mark
    where = _shown(getattr(mark, "name", None), root)
    if mark is not None:
        where += f", line {mark.line + 1}, column {mark.column + 1}"
    problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
    started = exc.context_mark
    opened = (
        f" ({exc.context} that starts on line {started.line + 1}, column {started.column + 1})"
        if exc.context and started is not None and mark is not None and started.line != mark.line
        else ""
    )
    fix = next((fix for phrase, fix in YAML_FIXES.items() if phrase in problem), YAML_FIX)
    return f"Invalid YAML in {where}: {problem}{opened}. {fix}"


def _shown(name: str | None, root: Path) -> str:
    """A YAML file's path relative to the project root where it lies inside it."""
    if not name or name.startswith("<"):
        return "a config file under conf/"
    try:
        return str(Path(name).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return name


def check_competition_name(plain: dict, chosen: str | None, overrides: Sequence[str]) -> None:
    """Refuse a competition whose `name:` is not its file name.

    Data, outputs, runs, tuned files and tracking are all keyed by the name: a copied file whose
    `name:` still says another competition would read and overwrite that competition's outputs.
    `chosen` is Hydra's choice for the `competition` group, that is the file's name.
    """
    name = (plain.get("competition") or {}).get("name")
    if chosen is None or name is None or name == "???" or str(name) == chosen:
        return
    from pipeline.config.tuned import key_of

    file = f"conf/competition/{chosen}.yaml"
    if any(key_of(o) == "competition.name" for o in overrides):
        raise PodiumError(
            f"Invalid configuration: competition.name={name} on the command line renames competition {chosen}, whose "
            f"data and outputs are keyed by its file name ({file}). Remove the competition.name override; to run "
            f"another competition, choose it with competition=<name>."
        )
    raise PodiumError(
        f"Invalid configuration: {file} says `name: {name}`, but a competition's name must equal its file name "
        f"(its data, outputs and runs are keyed by it: this file would read and overwrite outputs/{name}/). "
        f"Set `name: {chosen}` in {file}, or rename the file to {name}.yaml and choose competition={name}."
    )


def check_class_names(competition: dict) -> None:
    """Refuse class names that are not strings as YAML read them, and empty or repeated ones.

    The data's labels are compared as written; YAML reads unquoted true/false/yes/no/on/off as
    booleans, 01 and 1e5 as numbers (dropping the zero, rewriting the exponent) and null as nothing,
    so such a class would no longer spell the label it stands for.
    """
    classes = competition.get("classes")
    if not isinstance(classes, list):
        return  # `???` or a wrong type: the missing-value check and the schema name it
    where = f"conf/competition/{competition.get('name')}.yaml"
    typed = [c for c in classes if not isinstance(c, str)]
    if typed:
        read = ", ".join(f"{_as_yaml(c)} (a YAML {_yaml_type(c)})" for c in typed)
        raise PodiumError(
            f"Invalid configuration: competition.classes in {where} holds {read}, not text: YAML reads unquoted "
            f"true/false/yes/no/on/off as booleans, 01 or 1e5 as numbers and null as no value, so the class names "
            f"no longer spell the data's labels. Quote every class name as the labels are written, e.g. "
            f"classes: ['true', 'false'] or ['01', '02']."
        )
    empty = [i for i, c in enumerate(classes) if not c.strip()]
    if empty:
        raise PodiumError(
            f"Invalid configuration: competition.classes in {where} has an empty class name at position "
            f"{empty[0] + 1} ({classes!r}). Give every class the name its label has in train.csv."
        )
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise PodiumError(
            f"Invalid configuration: competition.classes in {where} lists {', '.join(map(repr, repeated))} more than "
            f"once. List each class once: its position is its output index."
        )


def _yaml_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "float"}.get(type(value), type(value).__name__)


def _as_yaml(value: object) -> str:
    """A value as YAML would write it back (true, null, 1): what the class name has become."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
