"""CPU threads for training: the cores this process may use, shared among the processes on this machine.

torch starts one intra-op thread per core it sees (`os.cpu_count()`), which in a container or
under `taskset` is the host's count, not the process's: two runs on one machine, or a DDP run
on CPU, then oversubscribe the cores and each runs slower than alone. `data.num_threads` sets
the count; by default it is the cores available to this process (its CPU affinity, capped by a
cgroup CPU quota), divided among the training processes of this machine.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)
CGROUP = Path("/sys/fs/cgroup")


def available_cores() -> int:
    """The cores this process may run on: its affinity mask, capped by its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cgroup_quota(root: Path = CGROUP) -> float | None:
    """The CPU quota in cores (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us over cpu.cfs_period_us); None if unlimited."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu" / "cpu.cfs_quota_us"
        if v1.is_file():
            quota_us = int(v1.read_text())
            return None if quota_us <= 0 else quota_us / int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):  # an unreadable or odd cgroup file: no quota known
        return None
    return None


def set_threads(configured: int | None, local_processes: int = 1, label: str = "training") -> int:
    """Set torch's intra-op threads (`configured`, else this process's share of the available cores) and say so."""
    import torch

    cores = available_cores()
    threads = configured if configured is not None else max(1, cores // max(1, local_processes))
    torch.set_num_threads(threads)
    share = f", shared by {local_processes} processes" if local_processes > 1 and configured is None else ""
    log.info(
        "%s on %d CPU thread%s (%s; %d core%s available%s)",
        label,
        torch.get_num_threads(),
        "" if torch.get_num_threads() == 1 else "s",
        "data.num_threads" if configured is not None else "the default",
        cores,
        "" if cores == 1 else "s",
        share,
    )
    return threads
