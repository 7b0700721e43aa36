"""`podium bundle`: the trained ensemble as one self-contained folder, for a machine with no checkout and no
internet (a code competition's notebook).

    manifest.json               every file's SHA-256 and size, the total, Podium's version and git commit,
                                the competition's dvc.lock hashes and the package versions it was made with
    predict.py, predict.ipynb   `python predict.py --test test.csv --out submission.csv`
    pipeline/                   Podium's own code, as it made the bundle (predict.py imports it first)
    outputs/<name>/ensemble/    the ensemble's config and fitted blend
    outputs/<name>/models/<m>/  each member's config and fitted folds (pipeline/inference/fitted.py)
    competitions/...            the project's own modules the members' configs name (a user's network)

Only the pinned stack needs to be installed where it runs (torch, Lightning, transformers,
scikit-learn, skops, ...). Before predicting, predict.py checks every file against the manifest.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import __version__, io
from pipeline.data.identity import file_sha256
from pipeline.errors import PodiumError

MANIFEST = "manifest.json"
PREDICT_PY = '''"""Predict with this bundle: python predict.py --test test.csv [--images DIR] [--out submission.csv].

Made by `podium bundle`; it needs the packages of manifest.json, and nothing outside this folder.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # this bundle's Podium, before any installed one
    from pipeline.inference.bundle import main

    sys.exit(main(Path(__file__).resolve().parent, sys.argv[1:]))
'''
STACK = ("torch", "lightning", "transformers", "tokenizers", "scikit-learn", "skops", "safetensors", "numpy", "pandas")


@dataclass
class BundleResult:
    folder: Path
    files: int
    bytes: int


def make_bundle(cfg, out: Path) -> BundleResult:
    """Copy what the competition's ensemble needs to predict into `out` (replaced as one unit)."""
    from pipeline.inference.blend import load_blend_members
    from pipeline.inference.model import saved_config
    from pipeline.models.targets import project_files
    from pipeline.provenance import git_state

    comp, root = cfg.competition, io.root(cfg)
    ensemble_dir = root / cfg.paths.outputs / comp.name / "ensemble"
    members = load_blend_members(ensemble_dir / "blend")
    copies = {ensemble_dir / "config.yaml": None, ensemble_dir / "blend": None}
    for member in members:
        folder = root / member.folder
        if not (folder / "fitted" / "fitted.json").is_file():
            from pipeline.inference.fitted import read_record

            read_record(folder)  # its error names the folder and the fix
        copies[folder / "config.yaml"] = None
        copies[folder / "fitted"] = None
        for file in project_files(saved_config(folder, root).model, root):
            copies[root / file] = None
    code = Path(__file__).resolve().parents[1]  # the pipeline package

    with io.staging_dir(Path(out)) as tmp:
        for source in copies:
            relative = source.relative_to(root) if source.is_relative_to(root) else None
            if relative is None:
                raise PodiumError(f"{source} lies outside the project {root}, so it cannot be bundled. Move it inside.")
            _copy(source, tmp / relative)
        _copy(code, tmp / "pipeline")
        io.write_text(tmp / "predict.py", PREDICT_PY)
        io.write_text(tmp / "predict.ipynb", notebook(comp.name))
        files = {
            str(p.relative_to(tmp)): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "podium": __version__,
            "competition": comp.name,
            "git": git_state(root),
            "dvc_lock": _dvc_lock(root / "competitions" / comp.name / "dvc.lock"),
            "packages": _versions(),
            "files": files,
            "total_bytes": sum(f["bytes"] for f in files.values()),
        }
        io.write_json(tmp / MANIFEST, manifest)
    return BundleResult(Path(out), len(files), manifest["total_bytes"])


def verify(folder: Path) -> dict:
    """The bundle's manifest, once every file it lists is present and unchanged, and this is its Podium."""
    path = folder / MANIFEST
    if not path.is_file():
        raise PodiumError(
            f"{path} is missing: {folder} is not a complete Podium bundle. Make it again (podium bundle)."
        )
    manifest = json.loads(path.read_text())
    if manifest.get("podium") != __version__:
        raise PodiumError(
            f"{folder} was made by Podium {manifest.get('podium')}, and this is Podium {__version__}: its fitted "
            f"state may not read the same. Run it with its own predict.py (which imports the bundle's Podium) or "
            f"make the bundle again with this Podium."
        )
    for name, entry in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise PodiumError(
                f"{file} is missing from the bundle (manifest.json lists it). Copy the whole bundle again."
            )
        if file.stat().st_size != entry["bytes"] or file_sha256(file) != entry["sha256"]:
            raise PodiumError(
                f"{file} differs from the bundle's manifest (SHA-256 {file_sha256(file)[:12]}..., expected "
                f"{entry['sha256'][:12]}...): it was altered or damaged in the copy. Copy the bundle again."
            )
    return manifest


def main(folder: Path, argv: list[str]) -> int:
    """predict.py's command line: verify the bundle, predict the given rows, report rows/s and the time budget."""
    import argparse
    import os
    import sys
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched: every file is in the bundle
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="predict.py", description="Predict new rows with this Podium bundle.")
    parser.add_argument("--test", type=Path, required=True, help="the rows to predict: a CSV like test.csv")
    parser.add_argument("--images", type=Path, help="their image folder (default: images/ beside the test file)")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"), help="default: submission.csv")
    parser.add_argument("--expect-rows", type=int, metavar="N", help="estimate the time for N rows")
    parser.add_argument("--budget-minutes", type=float, default=540, metavar="M", help="default: 540 (9 hours)")
    args = parser.parse_args(argv)
    import logging

    from pipeline import progress
    from pipeline.cli import print_predict_report
    from pipeline.inference.model import saved_config
    from pipeline.inference.predict import predict_file

    logging.basicConfig(level=logging.INFO, format="podium: %(message)s", handlers=[progress.log_handler()])
    try:
        manifest = verify(folder)
        ensemble_dir = folder / "outputs" / manifest["competition"] / "ensemble"
        comp = saved_config(ensemble_dir, folder).competition
        images = args.images or (args.test.parent / comp.files.images if comp.modality == "image" else None)
        with tempfile.TemporaryDirectory(prefix="podium-tokens-") as cache, progress.display(enabled=True):
            result = predict_file(ensemble_dir, folder, args.test, images, args.out, cache=Path(cache))
    except PodiumError as exc:
        print(f"predict.py: error: {exc}", file=sys.stderr)
        return 2
    print_predict_report(result, args.expect_rows, args.budget_minutes)
    return 0


def notebook(competition: str) -> str:
    """A notebook that runs predict.py (a code competition's submission notebook)."""
    cells = [
        f"# Podium bundle of {competition}: predict the hidden test set offline\n"
        "# Attach this folder as a dataset; set BUNDLE and DATA to where they are mounted.",
        "BUNDLE = '.'\nDATA = '../input'\n!python {BUNDLE}/predict.py --test {DATA}/test.csv --out submission.csv",
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


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in STACK:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
