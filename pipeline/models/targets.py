"""The user's classes named by `_target_`: imported, checked and constructed with errors that name the key.

A target is a dotted path, `package.module.Name`. Modules of the project itself resolve from the
project root, as `python -m` resolves them from the working folder: `competitions.animals.models.ResCNN`
is `competitions/animals/models.py` (no `__init__.py` needed). Installed packages resolve as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PodiumError, first_line


def import_target(path: object, key: str, where: str, root: Path) -> Any:
    """The object `path` names (`module.Name`), or a PodiumError naming `key`, the module and the import error."""
    if not isinstance(path, str) or "." not in path.strip("."):
        raise PodiumError(
            f"Invalid configuration: {key}._target_ is {path!r}; it must be a dotted path to a class, "
            f"e.g. competitions.<name>.models.MyNet (competitions/<name>/models.py). Fix it in {where}."
        )
    module_name, _, name = path.rpartition(".")
    _project_importable(root)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the user's module failing as it runs
        first = first_line(exc)
        file = module_file(module_name, root)
        raise PodiumError(
            f"Cannot import {key}._target_={path}: module {module_name}"
            f"{f' ({file})' if file else ''} raised {type(exc).__name__}: {first}. "
            f"Fix the module, or the path in {where} (project modules are named from the project root, "
            f"e.g. competitions.animals.models for competitions/animals/models.py)."
        ) from None
    if not hasattr(module, name):
        public = sorted(n for n in vars(module) if not n.startswith("_") and inspect.isclass(getattr(module, n)))
        raise PodiumError(
            f"Cannot import {key}._target_={path}: module {module_name} ({module_file(module_name, root)}) has no "
            f"{name!r}; its classes are {', '.join(public) or 'none'}. Fix the name in {where}."
        )
    return getattr(module, name)


def module_file(module_name: str, root: Path) -> str | None:
    """The file a module is read from, relative to the project root where it lies under it."""
    _project_importable(root)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    origin = Path(spec.origin).resolve()
    return str(origin.relative_to(root.resolve())) if origin.is_relative_to(root.resolve()) else str(origin)


def construct(cls: Any, given: dict[str, Any], known: dict[str, Any], key: str, where: str) -> Any:
    """`cls(**given, **known that its signature takes)`: Podium's facts (channels, n_outputs ...) by parameter name.

    `given` (the YAML's keys) wins over `known`. A call the signature refuses is reported with the
    signature and what was passed, before the constructor runs.
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # a builtin without a signature: pass what the YAML gives
        signature = None
    takes_any = signature is None or any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    arguments = {k: v for k, v in known.items() if takes_any or k in signature.parameters}
    arguments.update(given)
    if signature is not None:
        try:
            signature.bind(**arguments)
        except TypeError as exc:
            offered = ", ".join(f"{k}={_short(v)}" for k, v in arguments.items())
            raise PodiumError(
                f"Cannot build {key} ({_name(cls)}{signature}): {exc}. Podium passed {offered or 'nothing'} "
                f"(what it knows, {', '.join(known)}, goes to the parameters of those names; the rest comes from "
                f"{where}). Fix the keys in {where} or the constructor's parameters."
            ) from None
    try:
        return cls(**arguments)
    except Exception as exc:
        raise PodiumError(
            f"Cannot build {key} ({_name(cls)}): its constructor raised {type(exc).__name__}: {exc}. "
            f"Fix the values in {where} or the class."
        ) from None


_project_root: list[tuple[str, bool]] = []  # (the root this process imports from, whether Podium put it on sys.path)


def _project_importable(root: Path) -> None:
    """Put the project root first on the import path (what `python -m` does for the working folder).

    A process that moves to another project (the test suite does) forgets the modules it imported
    from the last one: `competitions.animals.models` must be the new project's file, not a cached one.
    """
    path = str(root.resolve())
    if _project_root and _project_root[0][0] != path:
        old, inserted = _project_root.pop()
        for name in [name for name, module in list(sys.modules.items()) if _under(module, old)]:
            del sys.modules[name]
        if inserted and old in sys.path:
            sys.path.remove(old)
    if not _project_root:
        _project_root.append((path, path not in sys.path))
    if path not in sys.path:
        sys.path.insert(0, path)
    importlib.invalidate_caches()


def _under(module: Any, folder: str) -> bool:
    """Whether a module is the project's own code, imported from the project root `folder`: not Podium, not the
    standard library, not an installed package (a virtual environment inside the project included), and not a
    module under the folder that came through another entry of the import path (the test suite's `tests/`)."""
    spec = getattr(module, "__spec__", None)
    if spec is None or spec.name.partition(".")[0] == "pipeline":
        return False
    places = []
    if spec.origin and Path(spec.origin).is_absolute():
        origin = Path(spec.origin)
        places.append(str(origin.parent if origin.stem == "__init__" else origin.with_suffix("")))
    if spec.submodule_search_locations is not None:
        places += list(spec.submodule_search_locations)[:1]
    # imported from the root, a module's dotted name is its path under the root: competitions/animals/models.py
    named = Path(*spec.name.split("."))
    root = Path(folder)
    return any(
        _project_path(place, root) and Path(place).resolve().relative_to(root.resolve()) == named for place in places
    )


def _project_path(place: str | None, root: Path) -> bool:
    """Whether a module's file lies in the project at `root` (absolute, under it, outside any installed packages)."""
    if not place or not Path(place).is_absolute():  # "built-in", "frozen"
        return False
    path = Path(place).resolve()
    installed = {"site-packages", "dist-packages"} & set(path.parts) or path.is_relative_to(Path(sys.prefix).resolve())
    return path.is_relative_to(root.resolve()) and not installed


def project_files(model: Any, root: Path) -> list[str]:
    """The project's own files that a model's `_target_`s name (under net, estimator and loss, nested ones
    included), relative to `root`: the code a model's training depends on beyond Podium's."""
    targets: list[str] = []

    def walk(node: Any) -> None:
        if hasattr(node, "items"):
            target = node.get("_target_")
            if isinstance(target, str) and "." in target:
                targets.append(target)
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)) or type(node).__name__ == "ListConfig":
            for value in node:
                walk(value)

    for key in ("net", "estimator", "loss"):
        walk(model.get(key))
    _project_importable(root)
    files: list[str] = []
    for target in targets:
        module = target.rpartition(".")[0]
        try:  # the top-level package first: finding a submodule imports its parents (torch for torch.nn)
            top = importlib.util.find_spec(module.partition(".")[0])
        except (ImportError, ValueError):
            continue
        where = [top.origin] if top and top.origin else []
        where += list(top.submodule_search_locations or [])[:1] if top else []
        if not any(_project_path(place, root) for place in where):
            continue
        file = module_file(module, root)
        if file and not Path(file).is_absolute() and file not in files:
            files.append(file)
    return files


def _name(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
