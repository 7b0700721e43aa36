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

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import __version__, io
from pipeline.data.identity import file_sha256
from pipeline.errors import PodiumError
from pipeline.inference.bundle_predict import MANIFEST, PREDICT_PY, notebook
from pipeline.inference.requirements import PREDICT_STACK, distribution_of, download_wheels, requirements
from pipeline.models import family


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
