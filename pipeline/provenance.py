"""What a run needs to be repeated: code version, environment and input data, in one record.

Each stage writes `provenance.json` beside its outputs and logs it to its MLflow run (with the
commit and dirty flag as tags): git commit and whether the tree had uncommitted changes, the
Python and package versions, the machine, and the DVC hash of every input (an `md5` as dvc.lock
writes it, `<md5>.dir` for a folder), so a result can be matched to the data it came from.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pipeline.secrets import redact

PACKAGES = (
    "podium",
    "torch",
    "lightning",
    "torchmetrics",
    "numpy",
    "pandas",
    "scikit-learn",
    "transformers",
    "tokenizers",
    "datasets",
    "mlflow",
    "optuna",
    "hydra-core",
    "omegaconf",
    "dvc",
)


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(folder: Path) -> dict[str, object]:
    """{"commit": sha or "unknown", "dirty": tracked files changed since it (None outside git)}."""
    commit = (_git(folder, "rev-parse", "HEAD") or "").strip() or "unknown"
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status.strip())}


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dvc_hash(path: Path) -> str | None:
    """The hash DVC records for `path` in dvc.lock: a file's md5, or a folder's listing md5 + ".dir"."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    if not path.is_dir():
        return None
    entries = [{"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()} for f in path.rglob("*") if f.is_file()]
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True, separators=(", ", ": "))
    return hashlib.md5(listing.encode()).hexdigest() + ".dir"


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def provenance(root: Path, inputs: dict[str, Path]) -> dict[str, object]:
    """The record for a run in project `root` that read `inputs` (name -> file or folder)."""
    return {
        "git": git_state(root),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command": redact(" ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))),
        "packages": versions(),
        "inputs": {name: {"path": _relative(path, root), "md5": dvc_hash(path)} for name, path in inputs.items()},
    }


def _relative(path: Path, root: Path) -> str:
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
