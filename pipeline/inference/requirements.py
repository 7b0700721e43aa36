"""The packages a bundle's predict.py needs, pinned to the versions installed, and their wheels."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import PodiumError

# What predicting imports (beyond a family's own `packages`); their dependencies are pinned with them.
PREDICT_STACK = (
    "torch", "lightning", "transformers", "tokenizers", "datasets", "scikit-learn", "skops", "safetensors",
    "numpy", "pandas", "pyarrow", "omegaconf", "hydra-core", "pillow", "rich",
)  # fmt: skip


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
