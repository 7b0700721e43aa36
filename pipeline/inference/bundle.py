"""`podium bundle`: the trained ensemble as one self-contained folder, for a machine with no checkout and no
internet (a code competition's notebook).

    manifest.json               every file's SHA-256 and size, the total, Podium's version and git commit,
                                the competition's dvc.lock hashes and the package versions it was made with
    predict.py, predict.ipynb   `python predict.py --test test.csv --out submission.csv`
    requirements.txt            the packages predicting needs, pinned to the versions it was made with
    wheels/                     with --wheels: those packages as wheels, for an offline
                                `pip install --no-index --find-links wheels -r requirements.txt`
    pipeline/                   Podium's own code, as it made the bundle (predict.py imports it first)
    outputs/<name>/ensemble/    the ensemble's config and fitted blend
    outputs/<name>/models/<m>/  each member's config and fitted folds (pipeline/inference/fitted.py)
    competitions/...            the project's own modules the members' configs name (a user's network)

Only requirements.txt needs to be installed where it runs; Podium's own code travels in the
bundle. Before predicting, predict.py checks every file against the manifest.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import __version__, io
from pipeline.data.identity import file_sha256
from pipeline.errors import PodiumError
from pipeline.models import family

MANIFEST = "manifest.json"
PREDICT_PY = '''"""Predict with this bundle: python predict.py --test test.csv [--images DIR] [--out submission.csv].

Made by `podium bundle`. It needs the packages of requirements.txt and nothing outside this folder.
Before any of the bundle's code runs, every file is checked against manifest.json (by the standard
library alone): a missing, altered or unlisted file stops it. The check catches damage and mix-ups,
not a deliberate forgery (the manifest is not signed): compare manifest.json's SHA-256 with the one
`podium bundle` printed.
"""

import os
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
# Python put this folder first on the import path. Off it until every file is checked, so that no file of
# the bundle (a planted json.py, say) is imported in place of the standard library's by the check itself.
# os and sys are loaded before any script runs, so they come from the interpreter whatever lies here.
sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != HERE]

import hashlib  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse(problems):
    print(
        f"predict.py: error: the bundle {HERE} is not as it was made: {'; '.join(problems[:5])}. Nothing was "
        f"predicted. Copy the whole bundle again (`podium bundle` makes it).",
        file=sys.stderr,
    )
    sys.exit(2)


def present_files():
    """The bundle's regular files (relative, /-separated), and what else lies here: links, devices, pipes."""
    files, odd = set(), []
    for folder, folders, names in os.walk(HERE):  # never into a linked folder
        for name in folders + names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, HERE).replace(os.sep, "/")
            if os.path.islink(path):
                odd.append(f"{relative} is a symbolic link")
            elif name in names:
                if os.path.isfile(path):
                    files.add(relative)
                else:
                    odd.append(f"{relative} is not a regular file")
    return files, odd


def check_files():
    try:
        listed = json.loads(open(os.path.join(HERE, "manifest.json"), encoding="utf-8").read())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        refuse([f"manifest.json is missing or unreadable ({type(exc).__name__})"])
    present, odd = present_files()
    present.discard("manifest.json")
    problems = odd + [f"{name} is missing" for name in sorted(set(listed) - present)]
    problems += [f"{name} is not in the manifest" for name in sorted(present - set(listed))]
    for name in sorted(set(listed) & present):
        digest = sha256(os.path.join(HERE, name))
        if digest != listed[name]["sha256"]:
            problems.append(f"{name} differs from the manifest (SHA-256 {digest[:12]}, expected {listed[name]['sha256'][:12]})")
    if problems:
        refuse(problems)


if __name__ == "__main__":
    check_files()
    sys.dont_write_bytecode = True
    sys.pycache_prefix = tempfile.mkdtemp(prefix="podium-pycache-")  # no cached bytecode from inside the bundle
    sys.path.insert(0, HERE)  # this bundle's Podium, before any installed one
    from pathlib import Path

    from pipeline.inference.bundle import main

    sys.exit(main(Path(HERE), sys.argv[1:]))
'''
# What predicting imports (beyond a family's own `packages`); their dependencies are pinned with them.
PREDICT_STACK = (
    "torch", "lightning", "transformers", "tokenizers", "datasets", "scikit-learn", "skops", "safetensors",
    "numpy", "pandas", "pyarrow", "omegaconf", "hydra-core", "pillow", "rich",
)  # fmt: skip


@dataclass
class BundleResult:
    folder: Path
    files: int
    bytes: int
    manifest_sha256: str


def make_bundle(cfg, out: Path, wheels: bool = False) -> BundleResult:
    """Copy what the competition's ensemble needs to predict into `out` (replaced as one unit); with `wheels`,
    a wheelhouse of the pinned packages too."""
    from pipeline.inference.blend import load_blend_members
    from pipeline.inference.model import saved_config
    from pipeline.provenance import git_state

    comp, root = cfg.competition, io.root(cfg)
    ensemble_dir = root / cfg.paths.outputs / comp.name / "ensemble"
    members = load_blend_members(ensemble_dir / "blend", root)
    copies = [ensemble_dir / "config.yaml", ensemble_dir / "blend"]
    code_of = [saved_config(ensemble_dir, root).ensemble.stack]  # a stack's own meta-model class
    packages: list[str] = []
    for member in members:
        folder = root / member.folder
        model = saved_config(folder, root).model
        _check_bundleable(member.name, folder, model)
        copies += [folder / "config.yaml", folder / "fitted"]
        code_of.append(model)
        packages.extend(distribution_of(p) for p in family(model.family).packages)
    copies += _project_code(code_of, root)
    pins = requirements([*PREDICT_STACK, *packages])
    _check_replaceable(Path(out))

    with io.staging_dir(Path(out)) as tmp:
        for source in dict.fromkeys(copies):
            if not source.is_relative_to(root):
                raise PodiumError(f"{source} lies outside the project {root}, so it cannot be bundled. Move it inside.")
            _copy(source, tmp / source.relative_to(root))
        _copy(Path(__file__).resolve().parents[1], tmp / "pipeline")  # Podium's own code, as it is now
        io.write_text(tmp / "predict.py", PREDICT_PY)
        io.write_text(tmp / "predict.ipynb", notebook(comp.name))
        io.write_text(tmp / "requirements.txt", "".join(f"{name}=={v}\n" for name, v in pins.items()))
        if wheels:
            download_wheels(tmp / "requirements.txt", tmp / "wheels")
        files = {
            p.relative_to(tmp).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "podium": __version__,
            "competition": comp.name,
            "git": git_state(root),
            "dvc_lock": _dvc_lock(root / "competitions" / comp.name / "dvc.lock"),
            "packages": pins,
            "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values()),
        }
        io.write_json(tmp / MANIFEST, manifest)
        digest = file_sha256(tmp / MANIFEST)
    return BundleResult(Path(out), len(files), manifest["total_bytes"], digest)


def _check_replaceable(out: Path) -> None:
    """`out` is replaced whole: refuse a folder that holds anything but an earlier bundle (`--out bundles`,
    `--out outputs/animals` or a home folder would be deleted)."""
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise PodiumError(
            f"--out {out} is a folder that holds other files and no {MANIFEST} of an earlier bundle; the bundle "
            f"replaces its folder whole, so nothing was written. Name a new or empty folder, e.g. {out / 'bundle'}."
        )
    if out.exists() and not out.is_dir():
        raise PodiumError(f"--out {out} is a file, not a folder; nothing was written. Name a folder for the bundle.")


def _check_bundleable(name: str, folder: Path, model) -> None:
    """Refuse a member the bundle could not rebuild offline, naming it and the fix."""
    from pipeline.inference.fitted import ARCHITECTURE, read_record

    read_record(folder)  # fitted state of this format
    if model.get("trust_remote_code"):
        raise PodiumError(
            f"Member {name} ({folder}) runs a model's own code from its pretrained folder (trust_remote_code), "
            f"which a bundle does not carry. Bundle without it, or use a model Transformers knows."
        )
    if hasattr(family(model.family).builders(), "save_architecture"):
        lacking = [f for f in sorted((folder / "fitted").glob("seed_*/fold_*")) if not (f / ARCHITECTURE).is_dir()]
        if lacking:
            raise PodiumError(
                f"Member {name}'s fold {lacking[0].relative_to(folder)} has no saved architecture: it was trained "
                f"before Podium kept one, so offline it would need its pretrained source. Retrain it "
                f"(`dvc repro`, or `podium train` with train.resume=false)."
            )


def _project_code(sections: list, root: Path) -> list[Path]:
    """The project's Python files the sections' `_target_`s import, with every module beside them (the helpers
    a competitions/<name>/models.py imports live there)."""
    from pipeline.models.targets import project_files

    files: list[Path] = []
    for section in sections:
        for file in project_files({"estimator": section}, root):  # every _target_ of the section, nested ones too
            files += sorted((root / file).parent.glob("*.py"))
    return files


def check_environment(manifest: dict) -> None:
    """Refuse another Podium, or a scikit-learn or skops of another minor version than the bundle was made
    with (fitted estimators may not load the same); list other packages whose versions differ."""
    from importlib.metadata import PackageNotFoundError

    if manifest.get("podium") != __version__:
        raise PodiumError(
            f"The bundle was made by Podium {manifest.get('podium')}, and this is Podium {__version__}: its fitted "
            f"state may not read the same. Run it with its own predict.py, or make the bundle again with this Podium."
        )
    differ = {}
    for name, made_with in manifest.get("packages", {}).items():
        try:
            installed = public_version(name)
        except PackageNotFoundError:
            installed = None
        if installed != made_with:
            differ[name] = (made_with, installed)
    strict = {n: v for n, v in differ.items() if n in ("scikit-learn", "skops") and _minor(v[0]) != _minor(v[1])}
    if strict:
        listed = ", ".join(f"{n} {made} (installed: {now})" for n, (made, now) in strict.items())
        raise PodiumError(
            f"The bundle's estimators were saved with {listed}: they may not load the same. Install the bundle's "
            f"requirements.txt (pip install -r requirements.txt, or --no-index --find-links wheels)."
        )
    if differ:
        import logging

        logging.getLogger(__name__).warning(
            "installed versions differ from the bundle's requirements.txt: %s",
            ", ".join(f"{n} {made} -> {now}" for n, (made, now) in differ.items()),
        )


def _minor(version: str | None) -> tuple[str, ...] | None:
    return tuple(version.split(".")[:2]) if version else None


def main(folder: Path, argv: list[str]) -> int:
    """predict.py's command line, once its own check has passed: predict the given rows, report rows/s and
    whether the expected hidden test set fits the time budget."""
    import argparse
    import json
    import logging
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched: every file is in the bundle
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from pipeline import progress
    from pipeline.cli import add_predict_arguments

    parser = argparse.ArgumentParser(prog="predict.py", description="Predict new rows with this Podium bundle.")
    add_predict_arguments(parser, "the submission to write (default: submission.csv)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="podium: %(message)s", handlers=[progress.log_handler()])
    try:
        from pipeline.inference.model import saved_config
        from pipeline.inference.predict import image_folder, predict_file, print_report

        manifest = json.loads((folder / MANIFEST).read_text())
        check_environment(manifest)
        ensemble_dir = folder / "outputs" / manifest["competition"] / "ensemble"
        comp = saved_config(ensemble_dir, folder).competition
        out = args.out or Path("submission.csv")
        with progress.display(enabled=True):
            result = predict_file(ensemble_dir, folder, args.test, image_folder(args, comp), out)
    except PodiumError as exc:  # bad input: one paragraph, as `podium` says it
        _report(args.debug, f"error: {exc}")
        return 2
    except Exception as exc:
        _report(
            args.debug,
            f"unexpected error: {type(exc).__name__}: {exc}\nThis is a bug in Podium or a library it uses, not a "
            f"problem with your input. Rerun with --debug for the traceback and report it.",
        )
        return 1
    print_report(result, args.expect_rows, args.budget_minutes)
    return 0


def _report(debug: bool, message: str) -> None:
    import sys

    if debug:
        import traceback

        traceback.print_exc()
    print(f"predict.py: {message}", file=sys.stderr)


def notebook(competition: str) -> str:
    """A code competition's submission notebook: runs predict.py on the hidden test set, offline."""
    cells = [
        f"# Podium bundle of {competition}: predict the hidden test set offline.\n"
        "# Attach the bundle as a dataset (and its wheels, if the notebook's image lacks the packages);\n"
        "# BUNDLE and TEST are where Kaggle mounts them: /kaggle/input/<dataset> and /kaggle/input/<competition>.",
        f"BUNDLE = '/kaggle/input/{competition}-bundle'\nTEST = '/kaggle/input/{competition}/test.csv'\n"
        "# !pip install --no-index --find-links {BUNDLE}/wheels -r {BUNDLE}/requirements.txt\n"
        "!python {BUNDLE}/predict.py --test {TEST} --out /kaggle/working/submission.csv",
    ]
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
                for c in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def _dvc_lock(path: Path) -> dict:
    """Each stage's output hashes in the competition's dvc.lock (what the bundled files were made from)."""
    if not path.is_file():
        return {}
    import yaml

    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    return {name: {o["path"]: o.get("md5") for o in stage.get("outs", [])} for name, stage in stages.items()}


def public_version(distribution: str) -> str:
    """The installed version without its local label (torch's +cpu): `torch==2.13.0` still takes a machine's
    CPU wheel (PEP 440 matches 2.13.0+cpu), and a GPU notebook's index gives it its CUDA build."""
    from importlib.metadata import version

    return version(distribution).split("+")[0]


def distribution_of(package: str) -> str:
    """The installed distribution providing the module `package` (xgboost: xgboost-cpu here, xgboost on a GPU
    machine), else `package` itself, taken as a distribution's name."""
    from importlib.metadata import packages_distributions

    found = packages_distributions().get(package)
    return found[0] if found else package


def requirements(roots: list[str]) -> dict[str, str]:
    """Every installed distribution `roots` need, dependencies included, pinned to its installed version."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned: dict[str, str] = {}
    done: set[tuple[str, str]] = set()  # (distribution, extra) already expanded
    todo = [(root, "") for root in roots]
    while todo:
        raw, extra = todo.pop()
        name = canonicalize_name(raw)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            pinned[name] = public_version(name)
        except PackageNotFoundError:
            raise PodiumError(
                f"{name} is not installed, and the bundle's predict.py needs it. Install it first."
            ) from None
        for line in requires(name) or []:
            requirement = Requirement(line)
            # a dependency asked for with extras (datasets needs fsspec[http]) brings those extras' dependencies
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, e) for e in ("", *requirement.extras)]
    return dict(sorted(pinned.items()))


def download_wheels(requirements_file: Path, folder: Path) -> None:
    """A wheelhouse of the pinned packages, for `pip install --no-index --find-links`."""
    import subprocess
    import sys

    done = subprocess.run(
        [
            # `pip wheel`, not `pip download`: a package published as source only (antlr4-python3-runtime,
            # which omegaconf needs) is built into a wheel here, so the offline install builds nothing
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--wheel-dir", str(folder), "--requirement", str(requirements_file)),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise PodiumError(
            f"pip could not download the bundle's wheels ({lines[-1] if lines else 'no output'}), so no bundle was "
            f"written. Check the package index is reachable (pip config), or bundle without --wheels."
        )
