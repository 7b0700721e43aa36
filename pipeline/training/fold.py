"""One fold of a network's training: its Trainer, module, resume, fit and gathered predictions.

`train_fold` trains on the other folds, keeps the checkpoint with the best validation score and
predicts the fold's rows (out-of-fold) and the test set with it. Under DDP every process runs
it on its share of the batches; the predictions come back whole, in dataset order, on each
(pipeline/training/distributed.py). `build_trainer` and `build_module` are what it trains with,
shared with the speed benchmarks (benchmarks/training_speed.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning.pytorch as L
import numpy as np
from lightning.pytorch.callbacks import ModelCheckpoint

from pipeline import progress
from pipeline.config.checks import check_batch_split
from pipeline.data.prepared import PreparedData
from pipeline.errors import PodiumError
from pipeline.inference.fitted import ARCHITECTURE
from pipeline.models import EstimatorFold, family
from pipeline.tracking import Tracker
from pipeline.training import distributed
from pipeline.training.augment import build_augment
from pipeline.training.callbacks import EpochLines, EpochLogger, FiniteLoss, Reseed
from pipeline.training.checkpoints import AtomicCheckpointIO, FoldResult
from pipeline.training.data_choices import balanced_weights
from pipeline.training.distributed import World, gather_rows
from pipeline.training.inputs import FoldInputs, fold_inputs
from pipeline.training.module import CompetitionModule, UndefinedScore
from pipeline.training.spec import FoldSpec
from pipeline.training.tta import build_tta

log = logging.getLogger(__name__)


def train_fold(
    spec: FoldSpec,
    data: PreparedData,
    fold: int,
    tracker: Tracker,
    history: list[dict],
    callbacks: Sequence[L.Callback] = (),
    predict_test: bool = True,
    label: str | None = None,
) -> FoldResult:
    """Train one fold (resuming an interrupted one when `train.resume`); its validation and test predictions.

    `callbacks` join the trainer's own (a sweep's pruning callback); `label` names the fold in
    messages ("cnn seed 1 fold 2"; default "<model> fold <k>").
    """
    label = label or spec.label(fold)
    L.seed_everything(spec.seed + fold, workers=True, verbose=False)
    is_valid = data.train["fold"].to_numpy() == fold
    state = spec.fold_state(fold)
    trainer, checkpoint = build_trainer(spec, fold, tracker, history, callbacks, label)
    world = World.of(trainer)
    check_batch_split(spec.model.batch_size, world.size, "trainer.devices x trainer.num_nodes")
    resume_at = state.resumable_epoch() if spec.resume and state.same_data(data.identity, label) else None
    distributed.barrier()  # every process has read the fold's saved state before rank 0 changes it
    if resume_at is None:
        if world.is_main:
            state.start(data.identity)  # only once the run is going ahead
    else:
        log.info("%s: resuming at epoch %d from %s", label, resume_at, state.last)
        restore_history(state.history(before_epoch=resume_at), history, tracker)  # the epochs already trained
    inputs = fold_inputs(spec, data, is_valid)
    module = build_module(spec, inputs, data.train["target"].to_numpy()[~is_valid])
    try:
        trainer.fit(
            module,
            inputs.train_loader(spec, seed=spec.seed + fold, world=world),
            inputs.eval_loader(inputs.valid, spec, world)[0],
            ckpt_path=state.last if resume_at is not None else None,
        )
    except UndefinedScore as exc:
        raise PodiumError(
            undefined_score(f"{label} ({exc})", spec, data.train["target"].to_numpy()[is_valid])
        ) from None
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1); keep it a Ctrl-C
            raise KeyboardInterrupt from None
        raise
    for callback in callbacks:  # a sweep's pruner stopped the fit on every process: the trial ends here
        if hasattr(callback, "check_pruned"):
            callback.check_pruned()
    if world.is_main:
        inputs.save_tokenizer(state.folder)
        builders = family(spec.model.family).builders()
        if hasattr(builders, "save_architecture"):  # what the fitted fold is rebuilt from (pipeline/inference/)
            builders.save_architecture(inputs.net, state.folder / ARCHITECTURE)

    def predict(dataset, what: str) -> np.ndarray:
        """Every row's prediction by the fold's best checkpoint, each process predicting its share."""
        loader, positions = inputs.eval_loader(dataset, spec, world)
        batches = trainer.predict(module, loader, ckpt_path=checkpoint.best_model_path) or []
        rows = (
            np.concatenate([b.numpy() for b in batches]).astype(np.float64)
            if batches
            else np.empty((0, spec.n_outputs))
        )
        return gather_rows(positions, rows, len(dataset), f"{label} {what}")

    scores = [(h["val/score"], h["epoch"]) for h in history if h["fold"] == fold]
    pick = max if spec.metric.direction == "maximize" else min
    best_epoch = pick(scores, key=lambda s: s[0])[1]  # first best epoch, as the checkpoint kept
    result = FoldResult(
        predict(inputs.valid, "out-of-fold"), predict(inputs.test, "test") if predict_test else None, best_epoch
    )
    if world.is_main:
        state.save_result(result)
    return result


def build_trainer(
    spec: FoldSpec,
    fold: int,
    tracker: Tracker,
    history: list[dict],
    callbacks: Sequence[L.Callback] = (),
    label: str | None = None,
) -> tuple[L.Trainer, ModelCheckpoint]:
    """The fold's Lightning Trainer with Podium's callbacks, and its checkpoint callback.

    Podium's callbacks: the best and last checkpoints, per-epoch records, the divergence check,
    per-batch reseeding and the progress bar; `callbacks` join them.
    """
    label = label or spec.label(fold)
    state = spec.fold_state(fold)
    checkpoint = ModelCheckpoint(
        dirpath=state.folder,
        filename="best",
        monitor="val/score",
        mode="max" if spec.metric.direction == "maximize" else "min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    own = [
        checkpoint,
        EpochLogger(tracker, fold, history, state.save_history),
        FiniteLoss(label),
        Reseed(spec.seed + fold),
        EpochLines(label, spec.metric.name),  # piped or logged runs: a line per epoch instead of the bar
        *([progress.epoch_bar(label)] if spec.progress_bar else []),
    ]
    trainer = L.Trainer(
        **spec.trainer,
        logger=False,
        callbacks=[*own, *callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )  # Podium shards the data itself (training/data.py)
    return trainer, checkpoint


def build_module(spec: FoldSpec, inputs: FoldInputs, train_target: np.ndarray | None = None) -> CompetitionModule:
    """The LightningModule around the fold's network: loss, metric, optimizer, augmentation, TTA.

    `train_target`, the fold's training rows' targets, sets the loss weights of model.class_weights=balanced.
    """
    weighting = spec.model.get("class_weights", "none")
    if weighting == "auto":
        raise RuntimeError("model.class_weights=auto reached a fold unresolved: the stage calls choose_from_data")
    weights = None
    if weighting == "balanced":
        if train_target is None:
            raise RuntimeError("model.class_weights=balanced needs the fold's training targets")
        weights = balanced_weights(train_target, len(spec.classes))
    return CompetitionModule(
        inputs.net,
        spec.model,
        spec.task,
        spec.metric,
        build_augment(spec.augment) if spec.augment is not None else None,
        build_tta(spec.tta, spec.modality, spec.task),
        channels_last=spec.channels_last,
        compile=spec.compile,
        class_weights=weights,
    )


def undefined_score(label: str, spec: FoldSpec, target: np.ndarray) -> str:
    """Why a fold's score is NaN, with the class counts of its validation rows."""
    present = (
        dict(zip(spec.classes, np.bincount(target.astype(int), minlength=len(spec.classes)).tolist()))
        if spec.task != "regression"
        else f"{len(target)} rows"
    )
    return (
        f"{label}: the {spec.metric.name} of its validation rows is undefined (NaN), so no outputs were written; its "
        f"validation rows hold {present}. A metric such as AUC or F1 needs every class among a fold's rows: "
        f"use fewer folds (competition.cv.n_splits), a stratified cv.scheme, or another metric."
    )


def restore_history(rows: list[dict], history: list[dict], tracker: Tracker) -> None:
    """Epochs an interrupted run trained: into the history table and the (new) fold run's curves."""
    for row in rows:
        history.append(row)
        tracker.log_metrics({k.replace("/", "_"): v for k, v in row.items() if "/" in k}, step=row["epoch"])


def fit_fold(
    spec: FoldSpec, data: PreparedData, fold: int, keep: bool = True, callbacks: Sequence[object] = ()
) -> FoldResult:
    """One fold of an estimator family (fit / predict, e.g. TF-IDF + logistic regression): no Lightning.

    With `keep` (not in a sweep's trials), the fitted estimator is saved in the fold's folder
    (pipeline/inference/fitted.py), beside where a network keeps its best checkpoint, for the
    model's `fitted/` output and `podium predict`: in its library's own format where the family
    keeps one (`save`), else with skops. `callbacks`: a sweep's pruning, which a family fitting in
    rounds (the boosted trees) reports to every few rounds.
    """
    from omegaconf import OmegaConf

    from pipeline.inference.fitted import config_targets, save_estimator
    from pipeline.training.threads import available_cores

    is_valid = data.train["fold"].to_numpy() == fold
    target = data.train["target"].to_numpy()
    train_rows, test_rows = estimator_rows(spec, data)
    builders = family(spec.model.family).builders()
    estimator = builders.fit(
        spec.model,
        EstimatorFold(
            task=spec.task,
            train_rows=_take(train_rows, ~is_valid),
            target=target[~is_valid],
            seed=spec.seed + fold,
            root=spec.root,
            valid_rows=_take(train_rows, is_valid),
            valid_target=target[is_valid],
            metric=spec.metric.name,
            threads=spec.model.get("threads") or spec.loading.num_threads or available_cores(),
            accelerator="gpu" if spec.trainer.get("accelerator") in ("gpu", "cuda") else "cpu",
            n_classes=len(spec.classes),
            on_iteration=next((c.report_iteration for c in callbacks if hasattr(c, "report_iteration")), None),
        ),
    )
    for callback in callbacks:  # a sweep's pruner stopped the fit: the trial ends here
        if hasattr(callback, "check_pruned"):
            callback.check_pruned()
    if keep and not distributed.secondary_process():  # every DDP process fits the same estimator: one saves it
        folder = spec.fold_state(fold).folder
        if hasattr(builders, "save"):
            builders.save(estimator, folder)
        else:
            targets = config_targets(OmegaConf.to_container(spec.model))
            save_estimator(folder, estimator, targets, spec.label(fold))
    valid_pred = estimator_predictions(estimator, _take(train_rows, is_valid), spec)
    test_pred = estimator_predictions(estimator, test_rows, spec) if keep else None  # a sweep's trial needs none
    return FoldResult(valid_pred, test_pred, None)


def estimator_rows(spec: FoldSpec, data: PreparedData) -> tuple:
    """An estimator's inputs, train and test: texts as a list of strings, images as flattened pixels in [0, 1],
    tables as the typed feature table (pipeline/data/tabular.py)."""
    if data.features is not None:
        return data.features.train, data.features.test
    if spec.text_column is not None:
        return data.train[spec.text_column].tolist(), data.test[spec.text_column].tolist()
    if data.image_files is not None:
        raise PodiumError(
            f"model={spec.name} ({spec.model.family}) fits on every image's pixels in memory at once, but the "
            f"images of {spec.competition} are streamed from their files (competition.image.store=auto chose stream: "
            f"they are over data.image_memory_gb). Train a network on them, or set competition.image.store=cache "
            f"with a smaller competition.image size."
        )
    return flat_pixels(data.train_images), flat_pixels(data.test_images)


def flat_pixels(images: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W, uint8) as an estimator reads them: one row of pixels in [0, 1] each."""
    return np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0


def estimator_predictions(estimator, rows, spec: FoldSpec) -> np.ndarray:
    """A fitted estimator's predictions of `rows` (training's and `podium predict`'s)."""
    from pipeline.models.estimator import predictions

    return predictions(estimator, rows, spec.task, spec.n_outputs)


def _take(rows, mask: np.ndarray):
    if isinstance(rows, list):
        return [row for row, keep in zip(rows, mask) if keep]
    if hasattr(rows, "iloc"):  # a feature table: its rows, numbered afresh
        return rows.iloc[np.flatnonzero(mask)].reset_index(drop=True)
    return rows[mask]
