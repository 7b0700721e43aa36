"""One batch through the user's network before any fold trains: a wrong output fails in seconds, not after a fold.

The check runs after the data are loaded and before any MLflow run or output is written, so a
refusal leaves the project as it was. It builds the network as fold 0 will (for text, over fold
0's vocabulary) and runs four training rows through it in eval mode.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.prepared import PreparedData
from pipeline.errors import PodiumError, first_line
from pipeline.models import family
from pipeline.training.spec import FoldSpec

ROWS = 4


def probe_network(spec: FoldSpec, data: PreparedData) -> None:
    """Refuse a network whose output on one batch is not (rows, n_outputs) finite logits (families whose
    record asks for it: the user's own networks; others return at once)."""
    if not family(spec.model.family).probe:
        return
    import torch

    model, root = spec.model, spec.root
    builders, expected = family(model.family).builders(), spec.n_logits
    rows = min(ROWS, len(data.train))
    target = (model.get("net") or {}).get("_target_", model.family)
    where = spec.where
    if spec.text_column is not None:
        texts = data.train[spec.text_column].tolist()
        fitted_on = [t for t, f in zip(texts, data.train["fold"].to_numpy()) if f != 0]
        tokenizer = builders.make_tokenizer(model, fitted_on, root)
        net = builders.build_text(model, tokenizer, expected, root)
        batch = tokenizer(texts[:rows], truncation=True, max_length=model.max_length, padding=True, return_tensors="pt")
        inputs = (batch["input_ids"], batch["attention_mask"])
        shown = f"input_ids and attention_mask of shape {tuple(batch['input_ids'].shape)}"
    else:
        from pipeline.training.inputs import image_rows

        first = image_rows(spec, data, np.arange(rows))  # as evaluation reads them: no augmentation
        images = torch.stack([first[n][0] for n in range(rows)]).float() / 255.0
        net = builders.build_image(model, *images.shape[1:], expected, root)
        inputs = (images,)
        shown = f"images of shape {tuple(images.shape)} scaled to [0, 1]"
    net.eval()
    with torch.no_grad():
        try:
            output = net(*inputs)
        except Exception as exc:
            first = first_line(exc)
            raise PodiumError(
                f"model.net ({target}) failed on one batch of {rows} training rows ({shown}): "
                f"{type(exc).__name__}: {first}. Fix its forward (or its arguments in {where})."
            ) from None
    if not isinstance(output, torch.Tensor):
        raise PodiumError(
            f"model.net ({target}) returned a {type(output).__name__} on one batch ({shown}); it must return "
            f"a tensor of logits of shape (N, {expected}). Fix its forward."
        )
    if tuple(output.shape) != (rows, expected):
        got = ("N", *output.shape[1:]) if output.ndim and output.shape[0] == rows else tuple(output.shape)
        raise PodiumError(
            f"model.net ({target}) returned shape {_shape(got)} on one batch of {rows} rows ({shown}); expected "
            f"{_shape(('N', expected))}: one logit per {'class' if spec.task == 'multiclass' else 'row'} "
            f"({spec.task} task). Fix its forward or n_outputs (Podium passes n_outputs={expected})."
        )
    if not torch.isfinite(output).all():
        raise PodiumError(
            f"model.net ({target}) returned NaN or infinite logits on one batch of {rows} training rows "
            f"({shown}), before any training. Fix its forward or initialisation."
        )
    if model.get("loss"):  # the user's loss on that batch: it must give one finite number
        from omegaconf import OmegaConf

        from pipeline.training.module import build_loss, custom_loss_value

        loss_cfg = OmegaConf.to_container(model.loss)
        truth = torch.from_numpy(
            data.train["target"].to_numpy()[:rows].copy()
        )  # a writable copy, off the parquet buffer
        try:
            value = custom_loss_value(build_loss(loss_cfg), output, truth, spec.task)
        except Exception as exc:
            first = first_line(exc)
            raise PodiumError(
                f"model.loss ({loss_cfg.get('_target_')}) failed on the network's output for one batch ({rows} rows, "
                f"logits {_shape(output.shape)}): {type(exc).__name__}: {first}. Fix model.loss in {where}."
            ) from None
        if not (isinstance(value, torch.Tensor) and value.numel() == 1 and torch.isfinite(value)):
            raise PodiumError(
                f"model.loss ({loss_cfg.get('_target_')}) gave {value!r} on one batch, not one finite number "
                f"(a reduction of 'none' or a NaN). Fix model.loss in {where}."
            )


def _shape(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"
