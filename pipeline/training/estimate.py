"""Cost before work: a network's training time on this machine, from a few timed batches, and a budget that caps it.

`estimate_cost` trains a handful of batches of fold 0 with the run's own Trainer settings
(precision, accelerator, batch size, max_length) and times them: the seconds per unit of work,
a token for a text network (batches are padded to their longest text, so time follows tokens),
a row otherwise. Scaled by the rows, epochs, folds and seeds of the run, that is the estimate; a
validation or test row costs a third of a training row (a forward pass without the backward).
The first timed batch is left out (lazy initialisation, allocator warm-up).

`fit_budget` (train.budget_minutes) lowers max_length, then the epochs, until the estimate fits, and
says what it changed. The figures it reports are estimates: benchmarks/text_defaults.py prints
them beside measured times.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from pipeline.data.prepared import PreparedData
from pipeline.training.fold import build_module
from pipeline.training.inputs import fold_inputs
from pipeline.training.spec import FoldSpec
from pipeline.training.text_data import TokenDataset

log = logging.getLogger(__name__)

TIMED_BATCHES = 3  # after one warm-up batch
EVAL_SHARE = 1 / 3  # a forward pass's share of a training step's time
LEAST_BUDGET_LENGTH = 32  # the budget lowers max_length to this at most, then the epochs


@dataclass
class Cost:
    """What a training costs: seconds per unit of work, and the units of fold 0 (scaled to every fold)."""

    per_unit: float  # seconds per training token (text) or row
    train_lengths: np.ndarray | None  # text: fold 0's training texts' token counts (truncated); None: rows
    valid_lengths: np.ndarray | None
    test_lengths: np.ndarray | None
    rows: tuple[int, int, int]  # fold 0's training, validation and test rows
    max_length: int | None  # text: the max_length the lengths were cut at
    epochs: int
    folds: int
    seeds: int
    views: int  # test-time augmentation views of each test row

    def seconds(self, max_length: int | None = None, epochs: int | None = None) -> float:
        """The estimated seconds of the whole training at `max_length` (<= the timed one) and `epochs`."""
        epochs = epochs or self.epochs
        train, valid, test = (self._units(i, max_length) for i in range(3))
        per_fold = epochs * (train + EVAL_SHARE * valid) + EVAL_SHARE * test * self.views
        return self.per_unit * per_fold * self.folds * self.seeds

    def _units(self, which: int, max_length: int | None) -> float:
        lengths = (self.train_lengths, self.valid_lengths, self.test_lengths)[which]
        if lengths is None:
            return float(self.rows[which])
        cut = max_length or self.max_length
        return float(np.minimum(lengths, cut).sum())


def estimate_cost(spec: FoldSpec, data: PreparedData, seeds: int) -> Cost:
    """Time a few training batches of fold 0 (the run's Trainer settings, one process) into a `Cost`."""
    folds = data.train["fold"].to_numpy()
    is_valid = folds == 0
    # a schedule costs nothing a step, and one of 4 steps may not build (OneCycleLR's warm-up of 1 step)
    spec = dataclasses.replace(spec, model=OmegaConf.merge(spec.model, {"scheduler": None}))
    inputs = fold_inputs(spec, data, is_valid)
    module = build_module(spec, inputs, data.train["target"].to_numpy()[~is_valid])
    clock = _BatchClock()
    flags = {k: v for k, v in spec.trainer.items() if k in ("accelerator", "precision", "deterministic")}
    trainer = L.Trainer(
        **flags,
        devices=1,
        max_epochs=1,
        limit_train_batches=TIMED_BATCHES + 1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    # the validation loader with limit_val_batches=0: no validation, and no warning that there is none
    trainer.fit(module, inputs.train_loader(spec, seed=spec.seed), inputs.eval_loader(inputs.valid, spec)[0])
    text = isinstance(inputs.train, TokenDataset)
    lengths = (inputs.train.lengths, inputs.valid.lengths, inputs.test.lengths) if text else (None, None, None)
    return Cost(
        per_unit=clock.per_unit(),
        train_lengths=lengths[0],
        valid_lengths=lengths[1],
        test_lengths=lengths[2],
        rows=(len(inputs.train), len(inputs.valid), len(inputs.test)),
        max_length=spec.model.max_length if text else None,
        epochs=int(spec.trainer.get("max_epochs") or spec.model.max_epochs),
        folds=int(folds.max()) + 1,
        seeds=seeds,
        views=max(1, len(spec.tta.get("views") or [])) if spec.modality == "image" else 1,
    )


class _BatchClock(L.Callback):
    """Seconds from one training batch's end to the next's (loading included), and each batch's units."""

    def __init__(self):
        self.start = 0.0
        self.ends: list[float] = []
        self.units: list[int] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        inputs, target = batch
        is_text = isinstance(inputs, dict) and "attention_mask" in inputs
        self.units.append(int(inputs["attention_mask"].sum()) if is_text else len(target))
        self.ends.append(time.perf_counter())

    def per_unit(self) -> float:
        """Seconds per unit of the batches after the first (of the first alone where there is one: an overestimate)."""
        if len(self.ends) < 2:
            return (self.ends[0] - self.start) / self.units[0]
        return (self.ends[-1] - self.ends[0]) / sum(self.units[1:])


def timer(cfg: DictConfig, data: PreparedData, seeds: int) -> Callable[[int], Cost]:
    """`fit_budget`'s `retime`: the configured training's cost timed again at another max_length."""
    return lambda length: estimate_cost(
        FoldSpec.of(OmegaConf.merge(cfg, {"model": {"max_length": length}})), data, seeds
    )


def describe(name: str, cost: Cost) -> str:
    """One line: the estimate, what it is made of, and (text) what a shorter max_length would cost."""
    what = f"{cost.folds} folds x {cost.epochs} epochs" + (f" x {cost.seeds} seeds" if cost.seeds > 1 else "")
    line = f"{name}: about {minutes(cost.seconds())} on this machine ({what}"
    if cost.max_length is not None:
        line += f", max_length {cost.max_length}"
        shorter = 64 if cost.max_length > 64 else None
        if shorter:
            line += f"; about {minutes(cost.seconds(shorter))} with max_length {shorter}"
    return line + "), estimated from timed batches of fold 0"


def minutes(seconds: float) -> str:
    """A duration for people: "40 s", "12 min", "1.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fit_budget(
    cfg: DictConfig,
    cost: Cost,
    budget_minutes: float,
    say: Callable = log.info,
    retime: Callable[[int], Cost] | None = None,
) -> dict[str, int]:
    """Lower model.max_length (text; multiples of 8, down to 32), then the epochs, until the estimate fits
    `budget_minutes`; set them in `cfg` and return what changed ({} where it already fits).

    `retime(max_length)` times batches again at another max_length: a Transformer's cost per token
    falls with the length (attention is quadratic), so scaling the time of 512-token batches down
    would lower max_length much further than the budget needs. With it, the longest fitting length is
    found by bisection on timed estimates; without it, by scaling `cost`.
    """
    budget = budget_minutes * 60
    if cost.seconds() <= budget:
        return {}
    length, epochs, timed = cost.max_length, cost.epochs, cost
    if length is not None:
        least = min(length, LEAST_BUDGET_LENGTH)
        candidates = list(range(length - length % 8 if length % 8 else length, least - 1, -8))[::-1]  # ascending
        if retime is None:
            length = next((n for n in candidates[::-1] if cost.seconds(n) <= budget), least)
        else:
            low, high, fitting = 0, len(candidates) - 1, None  # the longest candidate whose timed estimate fits
            while low <= high:
                middle = (low + high) // 2
                probe = retime(candidates[middle])
                if probe.seconds() <= budget:
                    fitting, low = (candidates[middle], probe), middle + 1
                else:
                    high = middle - 1
            length, timed = fitting or (least, retime(least))
    epochs = next((e for e in range(epochs, 0, -1) if timed.seconds(length, e) <= budget), 1)
    changes = {}
    if length != cost.max_length:
        changes["max_length"] = length
    if epochs != cost.epochs:
        changes["max_epochs"] = epochs
    with open_dict(cfg.model):
        for key, value in changes.items():
            cfg.model[key] = value
        # not `auto` any more, and not what the config says: a resume key keeps these values (reads.py)
        cfg.model.chosen_from_data = [k for k in cfg.model.get("chosen_from_data") or [] if k not in changes]
        cfg.model.fitted_to_budget = sorted(changes)
    if "max_epochs" in changes:
        cfg.trainer.max_epochs = epochs
    after = timed.seconds(length, epochs)
    before = {"max_length": cost.max_length, "max_epochs": cost.epochs}
    said = ", ".join(f"model.{k} {before[k]} -> {v}" for k, v in changes.items())
    say(
        f"{cfg.model.name}: train.budget_minutes={budget_minutes:g} is below the estimate "
        f"({minutes(cost.seconds())}): {said}, about {minutes(after)}"
        + ("" if after <= budget else "; still over the budget at the least it lowers to: raise it, or use fewer folds")
    )
    return changes


def estimate_config(cfg: DictConfig) -> list[str]:
    """`podium config --estimate`: resolve the model's `auto` keys from the prepared data (prepared into a
    scratch folder where the pipeline's do not match), estimate the training time, apply a budget; the lines said."""
    import tempfile
    from pathlib import Path

    from pipeline.prepare import load_prepared
    from pipeline.training.data_choices import choose_from_data
    from pipeline.training.train import preflight

    preflight(cfg)
    said: list[str] = []
    with tempfile.TemporaryDirectory(prefix="podium-estimate-") as scratch:
        data = load_prepared(cfg, Path(scratch) / "prepared")
        choose_from_data(cfg, data, say=said.append)
        spec = FoldSpec.of(cfg)
        if spec.kind != "network":
            return [*said, f"{cfg.model.name}: no estimate (the estimate times networks' batches)"]
        seeds = len(cfg.train.seeds) if cfg.train.seeds else 1
        cost = estimate_cost(spec, data, seeds)
        said.append(describe(cfg.model.name, cost))
        if cfg.train.budget_minutes is not None:
            fit_budget(cfg, cost, cfg.train.budget_minutes, say=said.append, retime=timer(cfg, data, seeds))
    return said
