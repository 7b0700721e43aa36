"""The LightningModule shared by every model family: loss, metric, optimiser, augmentation.

Batches are (inputs, target): inputs are uint8 images (N, C, H, W) for image models, a dict of
`input_ids` and `attention_mask` for text models. Binary tasks use one logit (sigmoid, binary
cross-entropy); predictions are still a probability per class.

Under DDP each process validates its share of the rows; the validation score is computed on
all of them (gathered), so every process keeps the same best epoch as a single process would.
"""

from __future__ import annotations

import inspect

import lightning.pytorch as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from pipeline.errors import PodiumError
from pipeline.metrics import Metric, score_predictions
from pipeline.training.distributed import gather_objects
from pipeline.training.tta import TTA, View


class UndefinedScore(PodiumError):
    """The validation metric is NaN on finite predictions (e.g. AUC on rows of one class)."""


class CompetitionModule(L.LightningModule):
    """Trains `net` on the competition's loss; logs `val/score`, the competition metric per epoch."""

    def __init__(
        self,
        net: nn.Module,
        model_cfg: DictConfig,
        task: str,
        metric: Metric,
        augment: nn.Module | None = None,
        tta: TTA | None = None,
        channels_last: bool = False,
        compile: bool = False,
        class_weights: np.ndarray | None = None,
    ):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.channels_last = channels_last
        # Compiled lazily on the first batch; kept out of the module's children, so checkpoints
        # hold the plain network's weights under the same names either way.
        self.__dict__["_run_net"] = torch.compile(self.net) if compile else self.net
        self.augment = augment
        self.tta = tta  # prediction only: validation (checkpoint choice) sees the plain images
        self.model_cfg = model_cfg
        self.task = task
        self.metric = metric
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._loss_sum: torch.Tensor | None = None  # the training epoch's summed loss (x rows) so far
        self._loss_rows = 0
        # model.loss: the user's loss (any callable(logits, target) by `_target_`), else the task's own
        self.custom_loss = build_loss(OmegaConf.to_container(model_cfg.loss)) if model_cfg.get("loss") else None
        # model.class_weights=balanced: each class's loss weight (None: unweighted); a buffer, so it moves with the
        # module to the device, but not persistent: checkpoints and saved weights stay as they were
        weights = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, inputs, augment: bool = False, view: View | None = None) -> torch.Tensor:
        if isinstance(inputs, dict) and "numeric" in inputs:  # a table's rows
            return self._run_net(inputs["numeric"], inputs["categorical"])
        if isinstance(inputs, dict):  # text
            return self._run_net(inputs["input_ids"], inputs["attention_mask"])
        x = inputs.float() / 255.0
        if augment and self.augment is not None:
            x = self.augment(x)
        if view is not None:  # a test-time augmentation view
            x = view.apply(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._run_net(x)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.custom_loss is not None:
            return custom_loss_value(self.custom_loss, logits, target, self.task)
        if self.task == "regression":
            return F.mse_loss(logits.float().squeeze(1), target.float())
        if self.task == "binary":
            if self.class_weights is None:
                return F.binary_cross_entropy_with_logits(logits.float().squeeze(1), target.float())
            # weighted mean over the batch, as cross_entropy's `weight` gives for the multi-class case
            rows = self.class_weights[target.long()]
            losses = F.binary_cross_entropy_with_logits(logits.float().squeeze(1), target.float(), reduction="none")
            return (losses * rows).sum() / rows.sum()
        return F.cross_entropy(logits.float(), target.long(), weight=self.class_weights)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Model outputs as predictions: class probabilities, or the value for regression."""
        if self.task == "regression":
            return logits.float()
        if self.task == "binary":
            positive = logits.float().sigmoid()
            return torch.cat([1 - positive, positive], dim=1)
        return logits.float().softmax(dim=1)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        if device.type == "cpu":  # already there: skip Lightning's walk over the batch (per-step cost)
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def training_step(self, batch, batch_idx):
        inputs, target = batch
        loss = self._loss(self(inputs, augment=True), target)
        # The epoch's mean loss, summed here and logged once at the epoch's last batch: the same
        # arithmetic as self.log(on_epoch=True) (value x batch size, over the rows), without its
        # cost on every step (several percent of a small model's step).
        if batch_idx == 0 or self._loss_sum is None:
            self._loss_sum, self._loss_rows = torch.zeros((), dtype=torch.float32, device=loss.device), 0
        self._loss_sum = self._loss_sum + loss.detach() * len(target)
        self._loss_rows += len(target)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if not (self.trainer.is_last_batch or batch_idx + 1 >= self.trainer.num_training_batches):
            return
        total, rows = self._loss_sum, torch.tensor(self._loss_rows, device=self._loss_sum.device)
        if self.trainer.world_size > 1:  # every process's rows
            total = self.trainer.strategy.reduce(total, reduce_op="sum")
            rows = self.trainer.strategy.reduce(rows, reduce_op="sum")
        # sync_dist: already the same on every process (summed above); it only says so to Lightning
        self.log("train/loss", total / rows, on_step=False, on_epoch=True, prog_bar=True, batch_size=1, sync_dist=True)
        self._loss_sum = None

    def validation_step(self, batch, batch_idx):
        inputs, target = batch
        logits = self(inputs)
        self.log("val/loss", self._loss(logits, target), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self._val_outputs.append((self.probabilities(logits).cpu(), target.cpu()))

    def on_validation_epoch_end(self):
        outputs, self._val_outputs = self._val_outputs, []
        if self.trainer.world_size > 1:  # every process's rows (each row once), so each computes the same score
            outputs = [batch for share in gather_objects(outputs) for batch in share]
        if not outputs:
            return
        pred = torch.cat([p for p, _ in outputs]).numpy()
        target = torch.cat([t for _, t in outputs]).numpy()
        score = score_predictions(self.metric, target, pred, self.task)
        if not np.isfinite(score) and np.isfinite(pred).all():  # not a divergence: the metric is undefined here
            raise UndefinedScore(f"epoch {self.current_epoch}")
        # the same on every process (computed on all rows); sync_dist only says so to Lightning
        self.log(
            "val/score", float(score) if np.isfinite(score) else float(self.metric.worst), prog_bar=True, sync_dist=True
        )

    def predict_step(self, batch, batch_idx):
        inputs, _ = batch
        if self.tta is None:
            return self.probabilities(self(inputs))
        return self.tta.combine([self.probabilities(self(inputs, view=view)) for view in self.tta.views], self.task)

    def configure_optimizers(self):
        opt_cfg = OmegaConf.to_container(self.model_cfg.optimizer)
        if hasattr(self.net, "parameter_groups"):  # per-group learning rates / weight decay (Transformers)
            params = self.net.parameter_groups(
                lr=opt_cfg.get("lr", 1e-3), weight_decay=opt_cfg.get("weight_decay", 0.0)
            )
        else:
            params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate_from("model.optimizer", opt_cfg, params=params)
        if not self.model_cfg.scheduler:
            return optimizer
        sched_cfg = OmegaConf.to_container(self.model_cfg.scheduler)
        interval = sched_cfg.pop("interval", "step")  # "step": every batch; "epoch": once per epoch
        runtime = {}
        # Schedules that need the run's length (OneCycleLR, ...) get it here, not from config.
        if (
            "total_steps" in inspect.signature(get_class(sched_cfg["_target_"])).parameters
            and "total_steps" not in sched_cfg
        ):
            runtime["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate_from("model.scheduler", sched_cfg, optimizer=optimizer, **runtime)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}


# Losses that read (N, K) class scores and class indices, and those that read one value per row: a
# binary or regression network has one output, a multiclass one K (pipeline/predictions.py n_logits).
CLASS_LOSSES = {"CrossEntropyLoss", "NLLLoss", "MultiMarginLoss", "cross_entropy", "nll_loss"}
ROW_LOSSES = {
    "BCEWithLogitsLoss",
    "BCELoss",
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "SmoothL1Loss",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "smooth_l1_loss",
}


def custom_loss_value(loss, logits: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """The user's loss on the shapes the task's own loss takes: (N, K) logits and class indices for multiclass
    (CrossEntropyLoss), (N,) logits and float targets for binary and regression (BCEWithLogitsLoss, MSELoss)."""
    if task == "multiclass":
        return loss(logits.float(), target.long())
    return loss(logits.float().squeeze(1), target.float())


def build_loss(cfg: dict):
    """`model.loss`: a loss class is built with the YAML's arguments, a loss function bound to them."""
    from hydra.utils import get_object

    if isinstance(get_object(cfg["_target_"]), type):
        return instantiate_from("model.loss", cfg)
    try:  # a function: bound to the YAML's arguments, called on each batch's (logits, target)
        return instantiate(cfg, _partial_=True)
    except Exception as exc:
        raise PodiumError(
            f"Cannot build model.loss ({cfg['_target_']}): {type(exc).__name__}: {exc}. Fix model.loss in the "
            f"model's file under conf/model/."
        ) from None


def check_loss(cfg: dict, task: str, where: str) -> None:
    """Refuse a torch loss that reads the other shape than the task's network gives (it would train on nonsense)."""
    name = str(cfg.get("_target_", "")).rpartition(".")[2]
    if (task == "multiclass" and name in ROW_LOSSES) or (task != "multiclass" and name in CLASS_LOSSES):
        gives = "(N, K) scores, one per class" if task == "multiclass" else "one logit (or value) per row"
        fits = (
            "CrossEntropyLoss"
            if task == "multiclass"
            else "BCEWithLogitsLoss"
            if task == "binary"
            else "MSELoss or HuberLoss"
        )
        raise PodiumError(
            f"Invalid configuration: model.loss is {name}, but a {task} task's network gives {gives} and "
            f"{name} reads the other shape. Use e.g. torch.nn.{fits}, or model.loss=null for the task's own, in {where}."
        )


def instantiate_from(key: str, cfg: dict, **runtime):
    """hydra's instantiate, with failures reported against the config key that caused them."""
    try:
        # partial, then called: runtime objects (parameter groups) must not pass through OmegaConf
        return instantiate(cfg, _partial_=True)(**runtime)
    except Exception as exc:  # a bad class path, argument or value: all the user's config
        cause = exc.__cause__ or exc
        shown = {k: v for k, v in runtime.items() if isinstance(v, (int, float))}
        raise PodiumError(
            f"Cannot build {key} ({cfg.get('_target_')}){f' with {shown}' if shown else ''}: "
            f"{type(cause).__name__}: {cause}. Fix {key} in the model's file under conf/model/ or override it "
            f"(a schedule over very few steps may need more rows or epochs, a smaller model.batch_size, "
            f"or {key}=null)."
        ) from None
