"""Learning-rate schedules not in torch, addressable by `_target_` from a model's config."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class WarmupLinear(LambdaLR):
    """Linear warm-up from 0 over the first `warmup` fraction of steps, then linear decay to 0.

    The recipe of BERT fine-tuning (transformers' get_linear_schedule_with_warmup). It scales each
    parameter group's own learning rate, so layer-wise decays are kept. `total_steps` is filled
    in by Podium from the run's length.
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup: float = 0.1, last_epoch: int = -1):
        if not 0 <= warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {warmup}")
        warm = max(1, int(total_steps * warmup))

        def factor(step: int) -> float:
            if step < warm:
                return step / warm
            return max(0.0, (total_steps - step) / max(1, total_steps - warm))

        super().__init__(optimizer, factor, last_epoch)
