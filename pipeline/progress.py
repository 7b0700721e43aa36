"""Progress bars for long work (folds, epochs, prediction, tokenization, sweep trials), drawn by rich.

One display lives for a whole command (`display()`, opened by the command line); work anywhere
below adds bars to it (`bar(...)`). Bars are drawn only on a terminal and vanish when done:
piped output (`dvc repro > log`, CI) keeps just the log lines, so nothing is lost either way.
Lightning's own bar is replaced by `EpochBar` (a ProgressBar callback), so the two never fight.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_display = None  # the rich Progress of the running command, when drawing on a terminal
_named: dict[str, Bar] = {}  # bars that code elsewhere advances by name (the folds of a training)


class Bar:
    """One line of the display; every method does nothing when there is no display."""

    def __init__(self, task_id=None, **fields: Any):
        self.task_id, self.fields = task_id, fields  # fields: shown after the bar ("loss 0.3123  val 0.9810")

    def advance(self, steps: float = 1) -> None:
        if _display is not None and self.task_id is not None:
            _display.advance(self.task_id, steps)

    def close(self) -> None:
        """Remove the bar from the display (once done, it has nothing more to say)."""
        if _display is not None and self.task_id is not None:
            _display.remove_task(self.task_id)
            _display.refresh()  # else the next printed line redraws the removed bar once more
        self.task_id = None

    def update(
        self, description: str | None = None, total: float | None = None, completed: float | None = None, **fields: Any
    ) -> None:
        if _display is not None and self.task_id is not None:
            self.fields.update(fields)
            _display.update(
                self.task_id, description=description, total=total, completed=completed, info=_info(self.fields)
            )
            if fields:  # new figures (every 20 batches at most) are drawn now, not at the next tick
                _display.refresh()


def _info(fields: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items() if v is not None)


class _StderrHandler(logging.StreamHandler):
    """A log handler writing to whatever `sys.stderr` is now: while bars are drawn that is rich's
    proxy, which prints the line above the bars instead of through them."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def log_handler() -> logging.Handler:
    return _StderrHandler()


def is_live() -> bool:
    return _display is not None


@contextmanager
def display(enabled: bool = True) -> Iterator[None]:
    """Draw bars on stderr for the duration, when it is a terminal (and `enabled`); else nothing."""
    global _display
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or _display is not None or not console.is_terminal:
        yield
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("<"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=True,
        refresh_per_second=4,
    )
    _display = progress
    try:
        with progress:
            yield
    finally:
        _display = None
        _named.clear()


def open_bar(description: str, total: float | None, **fields: Any) -> Bar:
    """A new bar (a do-nothing one when nothing is drawn); `close()` removes it."""
    if _display is None:
        return Bar()
    handle = Bar(_display.add_task(description, total=total, info=_info(fields)), **fields)
    _display.refresh()  # drawn at once: a short epoch may end before the next tick (4 a second)
    return handle


@contextmanager
def bar(description: str, total: float | None, name: str | None = None, **fields: Any) -> Iterator[Bar]:
    """A bar for the duration of the block (removed at its end); `name` lets `advance(name)` reach it."""
    handle = open_bar(description, total, **fields)
    if name:
        _named[name] = handle
    try:
        yield handle
    finally:
        _named.pop(name, None)
        handle.close()


def advance(name: str, steps: float = 1) -> None:
    """Advance the bar opened with `name`, if there is one."""
    if name in _named:
        _named[name].advance(steps)


def epoch_bar(label: str):
    """A Lightning callback drawing `label epoch e/E` with the batches, the loss and the validation score;
    prediction gets a bar of its own. Replaces Lightning's default bar."""
    from lightning.pytorch.callbacks import ProgressBar

    class EpochBar(ProgressBar):
        def __init__(self):
            super().__init__()
            self._enabled, self._bar = True, Bar()

        def disable(self) -> None:  # Lightning disables bars on ranks other than 0
            self._enabled = False

        def enable(self) -> None:
            self._enabled = True

        @property
        def is_enabled(self) -> bool:
            return self._enabled and is_live()

        def _replace(self, description: str, total: float) -> None:
            self._bar.close()
            self._bar = open_bar(description, total if total != float("inf") else None)

        def on_train_epoch_start(self, trainer, module):
            if self.is_enabled:
                self._replace(
                    f"{label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}", trainer.num_training_batches
                )

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if self.is_enabled:
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                # reading the loss waits for the device: every 20 batches is enough for the eye
                show = loss is not None and batch_idx % 20 == 0
                self._bar.update(completed=batch_idx + 1, **({"loss": float(loss)} if show else {}))

        def on_validation_epoch_end(self, trainer, module):
            score = trainer.callback_metrics.get("val/score")
            if self.is_enabled and score is not None:
                self._bar.update(val=float(score))

        def on_predict_epoch_start(self, trainer, module):
            if self.is_enabled:
                self._replace(f"{label} predicting", sum(trainer.num_predict_batches))

        def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
            self._bar.advance()

        def on_train_epoch_end(self, trainer, module):
            self._bar.close()

        def on_predict_epoch_end(self, trainer, module):
            self._bar.close()

        def teardown(self, trainer, module, stage):
            self._bar.close()

    return EpochBar()
