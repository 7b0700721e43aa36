"""Training on several processes (DDP): which process this is, and predictions gathered by row.

Every process of a DDP run executes the whole command (Lightning's launcher starts the others
by re-running it; `torchrun` and SLURM start them all), so each one knows its place from its
launcher's environment. Only global rank 0 writes files and MLflow runs; the others train and
predict their share of the rows.

Podium shards the data itself instead of Lightning's DistributedSampler, which pads the last
batch with repeated rows: training splits each global batch of `model.batch_size` rows across
the processes (so the optimizer steps on the batches a single process sees), and prediction
deals out whole batches without padding. `gather_rows` puts every process's predictions back
in dataset order and checks that each row came exactly once.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PodiumError


@dataclass(frozen=True)
class World:
    """This process's global rank among `size` training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Global rank 0: the process that writes outputs, logs to MLflow and draws progress."""
        return self.rank == 0

    @classmethod
    def of(cls, trainer) -> World:
        """A Lightning Trainer's World. One process is rank 0 of its own world, whatever a
        scheduler numbered it (SLURM numbers the tasks of `srun -n 4 ...`, independent workers)."""
        return cls(trainer.global_rank if trainer.world_size > 1 else 0, trainer.world_size)


def start(trainer_flags: dict) -> World:
    """This process's World for a Lightning Trainer with these flags; with several processes, start them and join them.

    Under Lightning's own launcher (`trainer.devices=N` on one machine) rank 0 starts the other
    local processes here, each re-running the command (they find LOCAL_RANK set and start no
    more); under torchrun or SLURM they are already running. Every process then joins the
    process group, so the command can synchronise (`barrier`, `broadcast_object`) before the
    first `fit`, and later Trainers find the group there and reuse it.
    """
    import lightning.pytorch as L

    # A Trainer's construction resolves the cluster environment (Lightning's own launcher,
    # torchrun, SLURM, ...) and the ranks, without starting anything.
    probe = L.Trainer(
        **{
            **trainer_flags,
            "logger": False,
            "enable_checkpointing": False,
            "enable_model_summary": False,
            "enable_progress_bar": False,
        }
    )
    world = World.of(probe)
    if not world.is_main:  # rank 0 alone logs; warnings and errors still show
        logging.getLogger("pipeline").setLevel(logging.WARNING)
    if world.size > 1:
        launcher = probe.strategy.launcher
        if launcher is not None:
            launcher.launch(lambda: None)
            atexit.register(_reap, getattr(launcher, "procs", []))
        probe.strategy.setup_environment()  # init_process_group (gloo on CPU, NCCL on GPUs)
    return world


def load_data(cfg, scratch: Path, world: World):
    """The prepared data for `cfg`; what is missing is prepared by rank 0 into `scratch`, by the
    other processes (started at the same moment by torchrun) each into a private folder, removed
    at once: the image arrays stay readable through their memory map."""
    from pipeline.prepare import load_prepared

    with tempfile.TemporaryDirectory(prefix="podium-rank-") as private:
        return load_prepared(cfg, scratch=scratch if world.is_main else Path(private))


def _reap(children: list, grace_s: float = 30) -> None:
    """At rank 0's exit: wait for the processes it started, and stop any still running after `grace_s`
    (after an error on rank 0 they would wait in a collective operation until its timeout)."""
    import subprocess

    for child in children:
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.kill()


# Set by the launchers that start DDP processes: torchrun (RANK, GROUP_RANK) and Lightning's own
# launcher (NODE_RANK, LOCAL_RANK on the processes it starts). Not SLURM_PROCID: srun numbers
# independent tasks too; under SLURM `start` quiets the other ranks once it knows the World.
_RANK_VARIABLES = ("RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK")


def secondary_process() -> bool:
    """Whether a DDP launcher started this process as other than global rank 0 (read from the
    environment only: cheap, for the command line to decide whether to log and draw)."""
    return any(os.environ.get(name, "0").strip() not in ("", "0") for name in _RANK_VARIABLES)


def _group_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for with one)."""
    import torch.distributed as dist

    if _group_size() > 1:
        dist.barrier()


def broadcast_object(value):
    """Rank 0's `value`, on every process (pickled); `value` itself with one process."""
    import torch.distributed as dist

    if _group_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value) -> list:
    """`value` from every process (in rank order); `[value]` when there is no process group."""
    import torch.distributed as dist

    if _group_size() == 1:
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def gather_rows(positions: np.ndarray, rows: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    """Every process's predicted rows in dataset order: row `positions[i]` of the result is `rows[i]`.

    Each of the `n_rows` positions must come from exactly one process; anything else would write
    duplicated or missing predictions, so it is refused.
    """
    parts = gather_objects((np.asarray(positions, dtype=np.int64), np.asarray(rows)))
    all_positions = np.concatenate([p for p, _ in parts])
    counts = np.bincount(all_positions, minlength=n_rows)
    if len(counts) != n_rows or (counts != 1).any():
        raise PodiumError(
            f"{what}: the {len(parts)} training processes predicted {len(all_positions)} rows for {n_rows} "
            f"({int((counts == 0).sum())} missing, {int((counts > 1).sum())} repeated), so nothing was written. "
            f"This is a bug in Podium's sharding; please report it with the command line."
        )
    out = np.empty((n_rows, *parts[0][1].shape[1:]), dtype=parts[0][1].dtype)
    out[all_positions] = np.concatenate([r for _, r in parts])
    return out
