"""Atomic file writes and the project's standard locations.

Every output is written to a temporary file beside its target and renamed into place, so a
crash, a kill or Ctrl-C never leaves a half-written file where a later stage would read it.
A temporary file a killed process left behind is removed by the next write of that target.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pipeline.secrets import redact


def _temp_prefix(target: Path) -> str:
    # The writer's process id is in the name, so a later writer can tell an abandoned temporary
    # file (its process was killed) from one being written right now.
    return f".{target.name}.{os.getpid()}."


def _remove_abandoned(target: Path) -> None:
    """Delete temporaries of `target` left by writers that were killed mid-write."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def write_config(path: Path, cfg: DictConfig) -> None:
    """Save the resolved config a stage used, without the machine-specific project root."""
    write_text(path, OmegaConf.to_yaml(portable_config(cfg)))


def portable_config(cfg: DictConfig) -> DictConfig:
    """The resolved config as it is saved and logged: no machine-specific root, no passwords in URLs."""
    plain = _redact_all(OmegaConf.to_container(cfg, resolve=True))
    plain["paths"].pop("root", None)
    return OmegaConf.create(plain)


def _redact_all(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _redact_all(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact_all(v) for v in node]
    return redact(node) if isinstance(node, str) else node


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling and swap it in when complete."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# -- locations ----------------------------------------------------------------------------------


def root(cfg: DictConfig) -> Path:
    return Path(cfg.paths.root)


def raw_dir(cfg: DictConfig) -> Path:
    return root(cfg) / cfg.paths.data / cfg.competition.name / "raw"


def prepared_dir(cfg: DictConfig) -> Path:
    """The pipeline's prepared data for the configured competition."""
    return root(cfg) / cfg.paths.outputs / cfg.competition.name / "prepared"


def model_dir(cfg: DictConfig, model_name: str) -> Path:
    return root(cfg) / cfg.paths.outputs / cfg.competition.name / "models" / model_name


def out_dir(cfg: DictConfig) -> Path:
    """Where the current command writes: `out_dir`, relative to the project root."""
    return root(cfg) / cfg.out_dir
