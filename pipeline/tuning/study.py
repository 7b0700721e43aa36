"""The study: created or resumed by name, checked against its objective, run by N workers."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import io, progress
from pipeline.config import compose
from pipeline.config.tuned import config_groups, key_of, to_overrides
from pipeline.errors import PodiumError
from pipeline.tuning.claims import ClaimLock, claim_lock_path
from pipeline.tuning.reclaim import is_lost, listing, reclaim_lost
from pipeline.tuning.space import SearchSpace, parse_space
from pipeline.tuning.storage import has_heartbeat, open_storage, storage_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to join the study, built and checked once before any trial."""

    root: Path
    overrides: list[str]  # the command line's, with train.tuned=false first
    study_name: str
    space: SearchSpace
    folds: list[int]
    objective: str  # hash of what trials are scored on; a resumed study must match it


def study_name(cfg: DictConfig) -> str:
    return f"{cfg.competition.name}-{cfg.model.name}-{cfg.tune.name}"


def make_plan(cfg: DictConfig, overrides: Sequence[str]) -> Plan:
    """Parse and probe the search space, fix the folds and hash the objective."""
    root = Path(cfg.paths.root)
    where = f"conf/tune/{cfg.model.name}.yaml"
    space = parse_space(OmegaConf.to_container(cfg.tune.search_space), where)
    given = {key_of(o) for o in overrides}
    both = [p.key for p in space.params if p.key in given]
    if both:
        raise PodiumError(
            f"{', '.join(both)} is both searched ({where}) and fixed on the command line. Drop the "
            f"override, or remove the parameter from the space with ~tune.search_space.{both[0]}."
        )
    _probe(cfg, space, overrides, where)
    n_folds = cfg.competition.cv.n_splits
    k = n_folds if cfg.tune.folds is None else cfg.tune.folds
    if not 1 <= k <= n_folds:
        raise PodiumError(
            f"tune.folds={cfg.tune.folds}: choose 1 to {n_folds} folds (competition.cv.n_splits), or null for all."
        )
    return Plan(root, list(overrides), study_name(cfg), space, list(range(k)), _objective_hash(cfg))


_ABSENT = object()  # OmegaConf.select's default: the key is not in the config


def _probe(cfg: DictConfig, space: SearchSpace, overrides: Sequence[str], where: str) -> None:
    """Compose the config at each end of every range and with every choice, so an unknown key or
    a value of the wrong type fails now, naming the parameter, not in the middle of the sweep."""
    root = Path(cfg.paths.root)
    groups = config_groups(root / "conf")
    for param in space.params:
        if not param.when and param.key not in groups and OmegaConf.select(cfg, param.key, default=_ABSENT) is _ABSENT:
            raise PodiumError(
                f"Invalid search space in {where}: `{param.key}` is not a key of the composed config "
                f"(`podium config model={cfg.model.name}` prints them all) nor a config group."
            )
    first = {p.key: p.extremes()[0] for p in space.params}
    variants = [first, {p.key: p.extremes()[-1] for p in space.params}]
    variants += [{**first, p.key: v} for p in space.params for v in p.extremes()[1:-1]]
    for values in variants:
        params: dict[str, Any] = {}
        for p in space.params:
            if p.active(params):
                params[p.key] = values[p.key]
        try:
            compose([*overrides, *to_overrides(params, groups)], root=root)
        except PodiumError as exc:
            raise PodiumError(
                f"Invalid search space in {where}: the config does not compose with {params}: {exc}"
            ) from None


def _objective_hash(cfg: DictConfig) -> str:
    """What every trial is scored on: the config less sweep bookkeeping, plus the space and folds."""
    plain = OmegaConf.to_container(io.portable_config(cfg))
    for key in ("out_dir", "tracking", "paths"):
        plain.pop(key, None)
    plain["tune"] = {"search_space": plain["tune"]["search_space"], "folds": plain["tune"]["folds"]}
    plain["trainer"].pop("enable_progress_bar", None)
    plain["data"].pop("num_workers", None)
    plain["train"] = {}
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(plain)).encode()).hexdigest()[:12]


def quiet_optuna() -> None:
    """Podium prints a line per trial: Optuna's own (with tracebacks for failed trials) would repeat them."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # heartbeats, TPE's `group` and the matplotlib plots are flagged experimental, once per use
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def make_sampler(cfg: DictConfig, worker: int):
    import optuna

    seed = cfg.tune.sampler.seed + worker  # workers must not sample the same sequence
    if cfg.tune.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # multivariate + group: models parameters jointly and handles conditional ones;
    # constant_liar: parallel workers avoid proposing what another is already running
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=cfg.tune.sampler.n_startup_trials, multivariate=True, group=True, constant_liar=True
    )


def make_pruner(cfg: DictConfig):
    import optuna

    p = cfg.tune.pruner
    if p.name == "median":
        # Early epochs under a one-cycle schedule rank trials poorly (the learning rate is still
        # rising): every trial gets `warmup` of its first fold's epochs (a boosted model's rounds) before it
        # can be stopped.
        from pipeline.tuning.pruning import fold_steps

        warmup = round(p.warmup * fold_steps(cfg))
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=warmup)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, max_resource="auto", reduction_factor=p.reduction_factor
        )
    return optuna.pruners.NopPruner()


def open_study(cfg: DictConfig, plan: Plan, worker: int = 0):
    """Create the study, or load it if it exists; refuse one built for another objective."""
    import optuna

    from pipeline.metrics import get_metric

    storage = open_storage(cfg)
    direction = get_metric(cfg.competition.metric).direction
    study = optuna.create_study(
        study_name=plan.study_name,
        storage=storage,
        direction=direction,
        load_if_exists=True,
        sampler=make_sampler(cfg, worker),
        pruner=make_pruner(cfg),
    )
    recorded = study.user_attrs.get("objective")
    if recorded is None:
        study.set_user_attr("objective", plan.objective)
        study.set_user_attr("overrides", [io.redact(o) for o in plan.overrides])
        study.set_user_attr("search_space", plan.space.describe())
    elif recorded != plan.objective:
        raise PodiumError(
            f"Study {plan.study_name} in {io.redact(storage_url(cfg))} was run with another objective (config, search "
            f"space or folds; its command line: {study.user_attrs.get('overrides')}), so its trials are not "
            f"comparable with this command's. Start a new study with tune.name=<name>, or repeat its settings."
        )
    if study.direction.name.lower() != direction:
        raise PodiumError(
            f"Study {plan.study_name} is to {study.direction.name.lower()} but {cfg.competition.metric} is to "
            f"{direction}. Use another tune.name."
        )
    return study


def stored_trials(study) -> list:
    """The study's trials as the storage holds them now, past optuna's per-process cache of an RDB
    storage (which can miss another worker's trial; the count that decides whether to start one more
    must not)."""
    from optuna.storages._cached_storage import _CachedStorage

    storage = study._storage
    backend = storage._backend if isinstance(storage, _CachedStorage) else storage  # the RDB storage behind it
    return backend.get_all_trials(study._study_id, deepcopy=False)


def finished_count(study_or_trials) -> int:
    """Trials that count toward tune.n_trials: complete, pruned, and failed by the objective (with a
    fail_reason); not a lost one, whose worker died (reclaim.py: it is retried instead)."""
    from optuna.trial import TrialState

    trials = study_or_trials if isinstance(study_or_trials, list) else study_or_trials.get_trials(deepcopy=False)
    return sum(
        1
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs and not is_lost(t))
    )


def running(study_or_trials) -> list:
    """The study's RUNNING trials (of a study, or of a list of its trials), oldest first."""
    from optuna.trial import TrialState

    if isinstance(study_or_trials, list):
        return sorted((t for t in study_or_trials if t.state == TrialState.RUNNING), key=lambda t: t.number)
    return study_or_trials.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def follow_study(root: Path, plan: Plan, world) -> None:
    """A DDP process other than rank 0: train each trial rank 0 announces, until the study is done."""
    from pipeline.tuning.objective import follow

    quiet_optuna()
    _, ctx = _trial_context(root, plan, 0, 1, None, world)
    follow(ctx)


def _trial_context(root: Path, plan: Plan, worker: int, n_workers: int, parent_run: str | None, world):
    """A worker's config and the TrialContext its trials share (rank 0's tracker only under DDP)."""
    import optuna

    from pipeline.tracking import Tracker
    from pipeline.training.distributed import World, load_data
    from pipeline.training.train import preflight
    from pipeline.tuning.objective import TrialContext

    world = world or World()
    # Progress bars of several workers would overwrite each other's lines: their trial lines say enough.
    overrides = [*plan.overrides, *(["trainer.enable_progress_bar=false"] if n_workers > 1 else [])]
    cfg = compose(overrides, root=root)
    from pipeline.training.threads import set_threads

    set_threads(cfg.data.num_threads, n_workers, label=f"worker {worker}" if n_workers > 1 else "trials")
    preflight(cfg)
    scratch = scratch_dir(cfg, plan)
    data = load_data(cfg, scratch / "prepared", world)
    tracker = Tracker.of(cfg, enabled=world.is_main)
    tracker.stopping = (optuna.TrialPruned,)  # a pruned trial's runs end KILLED, not FAILED
    return cfg, TrialContext(
        root,
        overrides,
        config_groups(root / "conf"),
        plan.space,
        data,
        plan.folds,
        cfg.model.name,
        plan.study_name,
        tracker,
        parent_run,
        scratch,
        world,
    )


def scratch_dir(cfg: DictConfig, plan: Plan) -> Path:
    """The study's working folder: trials' checkpoints, and its prepared data when the pipeline's do not match."""
    return io.root(cfg) / cfg.paths.checkpoints / "tune" / plan.study_name


def run_worker(root: Path, plan: Plan, worker: int, n_workers: int, parent_run: str | None, world=None) -> None:
    """One worker: run trials until the study holds tune.n_trials (or tune.timeout passes).

    Trials whose worker is gone are failed and retried first (reclaim.py). On heartbeat storages a
    running trial of another worker counts as claimed: when the running and finished trials make
    tune.n_trials, this worker waits until they finish or go silent, rather than start more.
    `world`: the DDP processes each trial trains on (this worker is their rank 0); None: this one.
    """
    from pipeline.tuning.objective import run_trial
    from pipeline.tuning.progress import report_trial

    quiet_optuna()
    cfg, ctx = _trial_context(root, plan, worker, n_workers, parent_run, world)
    study = open_study(cfg, plan, worker)
    target, heartbeat = cfg.tune.n_trials, has_heartbeat(study._storage)
    deadline = None if cfg.tune.timeout is None else time.monotonic() + cfg.tune.timeout

    def claimed(study) -> int:  # finished, and (heartbeats) running: another worker's, still beating
        reclaim_lost(study, cfg.tune.grace_period)
        trials = stored_trials(study)
        return finished_count(trials) + (len(running(trials)) if heartbeat else 0)

    # Counting the claimed trials and creating the next one happen under one lock (claims.py):
    # held from the count until the new trial exists (the objective's first act), or until the
    # worker decides to stop.
    lock = ClaimLock(claim_lock_path(storage_url(cfg), scratch_dir(cfg, plan)))

    def stop_when_claimed(study, _trial):
        lock.acquire()
        if claimed(study) >= target:
            lock.release()
            study.stop()

    def objective(trial):
        lock.release()  # the trial is in the storage, RUNNING: other workers now count it
        return run_trial(trial, ctx)

    with progress.bar(f"{plan.study_name}: trials", total=target, name="trials") as trials:
        trials.update(completed=finished_count(study))  # a resumed study starts where it stopped
        waited: list[int] = []
        try:
            while deadline is None or time.monotonic() < deadline:
                lock.acquire()
                if claimed(study) < target:
                    left = None if deadline is None else deadline - time.monotonic()
                    try:
                        study.optimize(
                            objective,
                            timeout=left,
                            catch=(Exception,),
                            callbacks=[report_trial(cfg.competition.metric), stop_when_claimed],
                        )
                    finally:
                        lock.release()  # stopped by the timeout before its next trial began
                    continue
                lock.release()
                if finished_count(study) >= target:
                    return
                waited = _wait_for(running(study), waited, cfg.tune)
        finally:
            lock.close()


def _wait_for(trials: list, waited: list[int], tune: DictConfig) -> list[int]:
    """Pause while other workers' trials run, saying so when the set changes; their numbers."""
    numbers = [t.number for t in trials]
    if numbers and numbers != waited:
        log.info(
            "waiting for %s to finish: with %s the study holds tune.n_trials=%d (a trial silent for tune.grace_period=%s s "
            "is failed here and retried)",
            listing(trials),
            "it" if len(trials) == 1 else "them",
            tune.n_trials,
            tune.grace_period,
        )
    if numbers:
        time.sleep(min(tune.heartbeat_interval, 2))
    return numbers
