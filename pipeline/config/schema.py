"""Typed schema of the composed configuration.

Hydra composes plain YAML; merging it into these dataclasses rejects unknown keys and wrong
types with the key's full path, before any work starts. Model sections differ per family, so
`model` is checked against the schema its `family` names (`pipeline.models.family(name).schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

TASKS = ("binary", "multiclass", "regression")
MODALITIES = ("image", "text", "tabular")
TARGET_TRANSFORMS = ("none", "log1p")
CV_SCHEMES = ("stratified", "stratified_group", "group", "kfold")
SUBMISSION_FORMATS = ("labels", "probabilities")
ENSEMBLE_METHODS = ("auto", "mean", "rank_mean", "weighted", "hill_climb", "stack")
HILL_CLIMB_INITS = ("empty", "best", "random")
ENSEMBLE_SEEDS = ("average", "separate")
WEIGHTED_SOLVERS = ("Powell", "Nelder-Mead", "SLSQP")
CLASS_WEIGHTS = ("auto", "none", "balanced")  # model.class_weights of the network families
TRUNCATIONS = ("head", "tail", "head_tail")  # model.truncation of the text networks
TTA_MERGES = ("mean", "geometric_mean", "max")
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")


@dataclass
class CVConfig:
    scheme: str = "stratified"
    n_splits: int = 5
    seed: int = 42
    group_column: str | None = None


@dataclass
class FilesConfig:
    train: str = "train.csv"
    test: str = "test.csv"
    sample_submission: str = "sample_submission.csv"
    images: str = "images"
    image_suffix: str = ".png"
    solution: str | None = "../private/solution.csv"


@dataclass
class ImageConfig:
    height: int = 28
    width: int = 28
    channels: int = 1
    resize: bool = False  # bring images of another size to height x width (false: refuse them, naming the file)
    fit: str = "resize"  # how: resize | center_crop | letterbox (pipeline/data/image_fit.py)
    store: str = "auto"  # cache | stream | auto: cache if the decoded images fit data.image_memory_gb


@dataclass
class TextConfig:
    column: str = "text"


@dataclass
class FeaturesConfig:
    """Tabular competitions: which columns are features, and of which type (the rest is inferred)."""

    drop: list[str] = field(default_factory=list)  # columns that are not features (besides id, target, group)
    categorical: list[str] = field(default_factory=list)  # read as categories even where every value is a number
    numeric: list[str] = field(default_factory=list)  # must hold numbers (or a missing value) on every row
    missing: list[str] = field(default_factory=lambda: [""])  # cell values that mean "missing", as written


@dataclass
class TargetConfig:
    transform: str = "none"  # regression: none | log1p (train on log1p(y); predictions go back by expm1)


@dataclass
class SubmissionConfig:
    format: str = "labels"


@dataclass
class CompetitionConfig:
    name: str = MISSING
    task: str = MISSING
    modality: str = "image"
    id_column: str = "id"
    target_column: str = MISSING
    classes: list[str] = field(default_factory=list)
    allow_missing_classes: bool = False  # a listed class with no training row: refused unless true
    metric: str = MISSING
    direction: str = MISSING
    report_metrics: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    overrides: list[str] = field(
        default_factory=list
    )  # Hydra overrides every command of it applies; the command line wins
    seeds: dict[str, list[int]] = field(default_factory=dict)  # model name -> its train.seeds in this competition
    files: FilesConfig = field(default_factory=FilesConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    text: TextConfig = field(default_factory=TextConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    cv: CVConfig = field(default_factory=CVConfig)


@dataclass
class ModelBase:
    name: str = MISSING
    family: str = MISSING
    batch_size: int = 128
    max_epochs: int = 10
    dropout: float = 0.0
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] | None = None
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    loss: dict[str, Any] | None = None  # a `_target_` called as loss(logits, target); None: the task's own


@dataclass
class NetworkBase(ModelBase):
    """A network trained by Lightning (every family but the estimators)."""

    # none | balanced (loss weights n / (k x count) from the fold's training rows) | auto (balanced where the
    # metric averages over classes and the imbalance ratio is above 3; pipeline/training/data_choices.py)
    class_weights: str = "auto"
    chosen_from_data: list[str] = field(default_factory=list)  # keys an `auto` was resolved for (set by the stage)
    fitted_to_budget: list[str] = field(default_factory=list)  # keys train.budget_minutes lowered (set by the stage)


@dataclass
class CNNConfig(NetworkBase):
    width: int = 32
    depth: int = 3
    convs_per_block: int = 2
    hidden: int = 128


@dataclass
class EfficientNetConfig(NetworkBase):
    pretrained: bool = True
    input_size: int = 32
    bn_momentum: float = 0.1


@dataclass
class TextModelBase(NetworkBase):
    max_length: Any = "auto"  # tokens kept per text, or auto: the 95th percentile of the training texts' lengths
    truncation: str = (
        "head"  # which tokens a longer text keeps: head | tail | head_tail (a quarter head, the rest tail)
    )
    bucket_by_length: bool = True


@dataclass
class LSTMConfig(TextModelBase):
    vocab_size: int = 10_000
    lowercase: bool = True
    embedding_dim: int = 128
    hidden_size: int = 64
    layers: int = 1
    bidirectional: bool = False
    pooling: str = "last"


@dataclass
class TransformerConfig(TextModelBase):
    pretrained: str = MISSING
    init: str = "pretrained"
    config_overrides: dict[str, Any] = field(default_factory=dict)
    layerwise_lr_decay: float = 1.0
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    trust_remote_code: bool = False  # run Python code shipped with a model folder or hub repo (never by default)


@dataclass
class TfidfConfig(ModelBase):
    """Not trained by Lightning: batch_size, epochs, optimizer and scheduler do not apply."""

    ngram_range: list[int] = field(default_factory=lambda: [1, 2])
    min_df: int = 2
    max_features: int | None = 200_000
    sublinear_tf: bool = True
    C: float = 4.0
    max_iter: int = 1000


@dataclass
class NetworkConfig(TextModelBase):
    """The user's torch network (`net._target_`); for text, over the LSTM family's word vocabulary."""

    net: dict[str, Any] = field(default_factory=dict)  # `_target_` and the constructor's other arguments
    vocab_size: int = 10_000  # text: words kept, most frequent of the fold's training rows first
    lowercase: bool = True  # text


@dataclass
class EstimatorConfig(ModelBase):
    """A scikit-learn-API estimator or Pipeline (`estimator._target_`); not trained by Lightning."""

    estimator: dict[str, Any] = field(default_factory=dict)


@dataclass
class MLPConfig(NetworkBase):
    """A Lightning multilayer perceptron over a table's features (pipeline/models/mlp.py)."""

    hidden: list[int] = field(default_factory=lambda: [256, 128])  # units of each hidden layer
    embedding_dim: int | None = None  # per categorical feature; None: min(16, (categories + 2) // 2)


@dataclass
class BoostingConfig(ModelBase):
    """Gradient-boosted trees (LightGBM, XGBoost, CatBoost); not trained by Lightning.

    `params` pass to the library's scikit-learn estimator as they are (its own names); Podium sets
    the seed, the threads, the device and the early-stopping metric.
    """

    n_estimators: int = 2000  # most trees; early stopping on the fold's validation rows picks fewer
    learning_rate: float = 0.05
    early_stopping_rounds: int | None = 100  # null: every fold grows n_estimators trees
    threads: int | None = None  # null: data.num_threads, else the cores available to the process
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    transforms: list[dict[str, Any]] = field(default_factory=list)  # kornia, on whole batches
    items: list[dict[str, Any]] = field(default_factory=list)  # albumentations, on each image in the workers


@dataclass
class TTAConfig:
    views: list[dict[str, Any]] = field(default_factory=list)
    merge: str = "mean"


@dataclass
class TrainConfig:
    seeds: list[int] | None = None
    tuned: bool = True  # apply competitions/<competition>/tuned/<model>.yaml (written by `podium tune`)
    tuned_from: str | None = None  # set by compose(): the tuned file applied, for the record
    resume: bool = True  # continue an interrupted run of the same config from its checkpoints
    compile: bool = False  # torch.compile the network
    channels_last: bool = False  # image models: NHWC memory layout
    estimate: bool = True  # networks: time a few batches and print the training time expected, before training
    budget_minutes: float | None = None  # networks: lower max_length, then epochs, until the estimate fits


@dataclass
class TrainerConfig:
    """Flags passed to lightning.pytorch.Trainer as they are."""

    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    deterministic: bool = True
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    enable_progress_bar: bool = True
    num_nodes: int = 1
    sync_batchnorm: bool = False
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None


@dataclass
class WeightedConfig:
    solver: str = "Powell"


@dataclass
class HillClimbConfig:
    rounds: int = 25
    init: str = "empty"
    init_size: int = 0
    seed: int = 0


@dataclass
class StackConfig:
    estimator: dict[str, Any] | None = None
    C: float = 1.0


@dataclass
class EnsembleConfig:
    method: str = "auto"
    candidates: list[str] = field(default_factory=lambda: list(ENSEMBLE_METHODS[1:]))
    members: list[str] | None = None
    seeds: str = "average"
    weighted: WeightedConfig = field(default_factory=WeightedConfig)
    hill_climb: HillClimbConfig = field(default_factory=HillClimbConfig)
    stack: StackConfig = field(default_factory=StackConfig)


@dataclass
class PrunerConfig:
    name: str = "median"
    n_startup_trials: int = 4
    warmup: float = 0.25
    min_resource: int = 1
    reduction_factor: int = 3


@dataclass
class SamplerConfig:
    name: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 8


@dataclass
class TuneConfig:
    name: str = "default"
    n_trials: int = 20
    timeout: float | None = None
    n_workers: int = 1
    folds: int | None = None
    storage: str = "sqlite:///optuna.db"
    heartbeat_interval: int = 10
    grace_period: int = 30
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    search_space: dict[str, Any] = field(default_factory=dict)
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    write_best: bool = True


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = MISSING
    artifacts: str = "mlartifacts"


@dataclass
class DataConfig:
    limit_train_rows: int | None = None
    num_workers: int = 0
    pin_memory: bool | None = None  # None: on when training on a GPU
    persistent_workers: bool = True
    num_threads: int | None = None  # torch's CPU threads per training process; None: its share of the cores
    image_memory_gb: float | None = None  # competition.image.store=auto: the decoded images' budget; None: RAM / 4
    image_cache_side: int | None = 512  # streamed images: the disk cache's longest side; None: no disk cache


@dataclass
class PathsConfig:
    root: str = "."  # set to the absolute project root by compose()
    data: str = "data"
    outputs: str = "outputs"
    checkpoints: str = "checkpoints"
    submissions: str = "submissions"
    competitions: str = "competitions"
    cache: str = "cache"


@dataclass
class Config:
    competition: CompetitionConfig = field(default_factory=CompetitionConfig)
    model: Any = None  # checked against its family's schema (pipeline.models.family)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tta: TTAConfig = field(default_factory=TTAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    out_dir: str = MISSING
