"""What runs where a bundle is (pipeline/inference/bundle.py makes it): predict.py's text, the notebook that
calls it, and `main`, what predict.py runs once its own file check has passed.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import __version__
from pipeline.errors import PodiumError
from pipeline.inference.requirements import public_version

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

    from pipeline.inference.bundle_predict import main

    sys.exit(main(Path(HERE), sys.argv[1:]))
'''


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
