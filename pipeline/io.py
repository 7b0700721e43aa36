"""Atomic file writes and the project's standard locations.

Every output is written to a temporary file beside its target and renamed into place, so a
crash, a kill or Ctrl-C never leaves a half-written file where a later stage would read it.
A stage's output folder is committed as a unit the same way (`staging_dir`): built in a
temporary sibling and exchanged with the old folder in one rename, so a reader sees the old
folder or the new one, never a mix. A temporary file or folder a killed process left behind is
removed by the next write of that target. Files and folders get the modes the process umask
gives (as `open` and `mkdir` would), not the private modes of the temporary-file functions.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
        pid = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (a killed child its parent has not reaped yet does not).

    Unsure answers (another user's process, no /proc, Windows) say alive: callers only clean up or
    reclaim after a process that is certainly gone."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie
    except (OSError, IndexError):  # no /proc (macOS)
        return True


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: readable by the owner alone
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


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: restored at once
    os.umask(mask)
    return mask


@contextmanager
def staging_dir(target: Path, keep: Sequence[str] = ()) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling and swap it in, as one unit, when complete.

    `keep`: entries of the old folder that are not the stage's outputs (a scratch folder of
    prepared data, say), moved into the new one before the swap. On an error nothing changes.
    """
    target = Path(target)
    if (target / "conf" / "config.yaml").is_file():  # out_dir=. would swap the whole project away
        from pipeline.errors import PodiumError

        raise PodiumError(
            f"{target} is a Podium project, not an output folder: set out_dir to a folder of its own "
            f"(e.g. out_dir=runs/mine)."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        for name in keep:
            if (target / name).exists() and not (tmp / name).exists():
                os.replace(target / name, tmp / name)
        if not target.exists():
            os.replace(tmp, target)
        elif not _exchange(tmp, target):  # no atomic exchange here: the old folder goes aside first
            aside = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
            os.replace(target, aside / target.name)
            os.replace(tmp, target)
            tmp = aside
    finally:
        if tmp.exists():  # on success: the old folder, exchanged into the temporary name
            shutil.rmtree(tmp)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux's renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import errno
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # a kernel or file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))


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
