"""Training throughput per model family: Podium against a hand-written PyTorch loop, 32-true
against bf16-mixed, and the data loader alone against what the model consumes.

bf16-mixed is measured where the hardware computes bf16 natively (a GPU from Ampere on; a CPU with
AVX512-BF16 or AMX), the machines where `trainer.precision: auto` picks it; elsewhere emulated bf16
is several times slower than 32-bit (benchmarks/precision.py) and is measured only when asked for
with `--precisions 32-true bf16-mixed`.

    .venv/bin/python benchmarks/training_speed.py                    # every family, this CPU
    .venv/bin/python benchmarks/training_speed.py --families cnn lstm --repeats 3
    .venv/bin/python benchmarks/training_speed.py --accelerator gpu  # on a GPU (benchmarks/gpu_check.sh)

Both sides of a comparison run in this process on fold 0 of the demo competition (the
pipeline's prepared data: run `make run` or `podium prepare` first), with the same network
(the same initial weights), batches, optimizer and schedule, gradient clipping, precision and
thread count. "Podium" is the Trainer and module `podium train` builds (pipeline/training/
fold.py: its callbacks, logging, reseeding, divergence check); "plain" is the loop below.
A third side, "lightning", is a bare Lightning Trainer with the same flags and module and none
of Podium's callbacks: it splits the overhead into Lightning's and Podium's own. Runs come in
rounds, one of each side back to back, the order reversed every round; the first round is a
warm-up and dropped. Samples/s are the medians over the rounds and podium/plain is the median
of the rounds' ratios, so a drift of the machine (a noisy neighbour, the clock) falls
on both sides. Only training batches after a warm-up are timed: no validation, checkpointing or
start-up.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(os.environ.get("PODIUM_ROOT", Path(__file__).resolve().parents[1]))  # the project whose data it trains on

# family: (competition, model, warm-up batches, timed batches on CPU)
FAMILIES = {
    "cnn": ("animals", "cnn", 3, 30),
    "efficientnet": ("animals", "efficientnet", 3, 15),
    "lstm": ("rotten-tomatoes", "lstm", 3, 30),
    "transformer": ("rotten-tomatoes", "transformer", 2, 12),
}
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass
class Measured:
    samples_per_s: float
    peak_gpu_mb: float | None = None


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Window:
    """Times batches [warmup, warmup + n) of an epoch, from the start of the first to the end of the last."""

    def __init__(self, warmup: int, n: int, device):
        self.warmup, self.last, self.device = warmup, warmup + n - 1, device
        self.started = self.ended = None

    def batch_start(self, index: int) -> None:
        if index == self.warmup:
            _sync(self.device)
            self.started = time.perf_counter()

    def batch_end(self, index: int) -> bool:
        """True after the last timed batch."""
        if index == self.last:
            _sync(self.device)
            self.ended = time.perf_counter()
            return True
        return False

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _timer(window: _Window):
    import lightning.pytorch as L

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, index):
            window.batch_start(index)

        def on_train_batch_end(self, trainer, module, outputs, batch, index):
            window.batch_end(index)

    return Timer()


def podium_run(cfg, inputs, net, window: _Window) -> None:
    """The timed batches through the Trainer and module that `podium train` builds."""
    from pipeline.tracking import Tracker
    from pipeline.training.fold import build_module, build_trainer
    from pipeline.training.spec import FoldSpec

    spec = FoldSpec.of(cfg)
    trainer, _ = build_trainer(
        spec, fold=0, tracker=Tracker.of(cfg, enabled=False), history=[], callbacks=[_timer(window)]
    )
    module = build_module(spec, dataclasses.replace(inputs, net=net))
    trainer.fit(module, inputs.train_loader(spec, seed=cfg.seed), inputs.eval_loader(inputs.valid, spec)[0])


def lightning_run(cfg, inputs, net, window: _Window) -> None:
    """The timed batches through a bare Lightning Trainer (the same flags and module, none of
    Podium's callbacks): what Lightning itself costs, apart from Podium."""
    import lightning.pytorch as L

    from pipeline.training.fold import build_module
    from pipeline.training.spec import FoldSpec

    spec = FoldSpec.of(cfg)
    trainer = L.Trainer(
        **spec.trainer,
        logger=False,
        callbacks=[_timer(window)],
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )
    module = build_module(spec, dataclasses.replace(inputs, net=net))
    trainer.fit(module, inputs.train_loader(spec, seed=cfg.seed), inputs.eval_loader(inputs.valid, spec)[0])


def plain_run(cfg, inputs, net, window: _Window, device) -> None:
    """The timed batches through a hand-written loop: what one would write without a framework."""
    import torch
    import torch.nn.functional as F
    from hydra.utils import get_class, instantiate
    from omegaconf import OmegaConf

    from pipeline.training.augment import build_augment
    from pipeline.training.spec import FoldSpec

    task, image = cfg.competition.task, cfg.competition.modality == "image"
    net = net.to(device).train()
    augment = build_augment(cfg.augment) if image else None
    opt_cfg = OmegaConf.to_container(cfg.model.optimizer)
    params = (
        net.parameter_groups(lr=opt_cfg["lr"], weight_decay=opt_cfg.get("weight_decay", 0.0))
        if hasattr(net, "parameter_groups")
        else net.parameters()
    )
    optimizer = instantiate(opt_cfg, _partial_=True)(params=params)
    scheduler = None
    if cfg.model.scheduler:
        sched_cfg = OmegaConf.to_container(cfg.model.scheduler)
        sched_cfg.pop("interval", None)
        takes_steps = "total_steps" in inspect.signature(get_class(sched_cfg["_target_"])).parameters
        extra = {"total_steps": window.last + 1} if takes_steps and "total_steps" not in sched_cfg else {}
        scheduler = instantiate(sched_cfg, _partial_=True)(optimizer=optimizer, **extra)
    bf16 = str(cfg.trainer.precision) == "bf16-mixed"
    clip = cfg.trainer.gradient_clip_val
    for index, (x, y) in enumerate(inputs.train_loader(FoldSpec.of(cfg), seed=cfg.seed)):
        window.batch_start(index)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if image:
                x = (
                    augment(x.to(device, non_blocking=True).float() / 255.0)
                    if augment
                    else x.to(device).float() / 255.0
                )
                logits = net(x)
            else:
                logits = net(
                    x["input_ids"].to(device, non_blocking=True), x["attention_mask"].to(device, non_blocking=True)
                )
        if task == "binary":
            loss = F.binary_cross_entropy_with_logits(logits.float().squeeze(1), y.float())
        elif task == "regression":
            loss = F.mse_loss(logits.float().squeeze(1), y.float())
        else:
            loss = F.cross_entropy(logits.float(), y.long())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if window.batch_end(index):
            return


def loader_run(cfg, inputs, window: _Window) -> None:
    """The training loader alone: batches drawn and collated, no model."""
    from pipeline.training.spec import FoldSpec

    for index, _ in enumerate(inputs.train_loader(FoldSpec.of(cfg), seed=cfg.seed)):
        window.batch_start(index)
        if window.batch_end(index):
            return


def native_precisions(accelerator: str) -> tuple[str, ...]:
    """32-true, and bf16-mixed where `trainer.precision: auto` would pick it on this machine."""
    from pipeline.config.precision import AUTO, resolve

    return PRECISIONS if resolve(AUTO, accelerator) == "bf16-mixed" else ("32-true",)


def measure_family(
    family: str, accelerator: str, repeats: int, scale: float, scratch: Path, precisions: tuple[str, ...]
) -> dict:
    import torch

    from pipeline.config import compose
    from pipeline.prepare import load_prepared
    from pipeline.training.data_choices import choose_from_data
    from pipeline.training.inputs import fold_inputs
    from pipeline.training.spec import FoldSpec
    from pipeline.training.train import preflight

    competition, model, warmup, n = FAMILIES[family]
    n = max(6, round(n * scale))  # fewer steps than this and one-cycle schedules cannot be built
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    results: dict = {}
    for precision in precisions:
        cfg = compose(
            [
                f"competition={competition}",
                f"model={model}",
                f"trainer={'gpu' if accelerator == 'gpu' else 'cpu'}",
                f"trainer.precision={precision}",
                "trainer.max_epochs=1",
                f"trainer.limit_train_batches={warmup + n}",
                "trainer.limit_val_batches=1",
                "trainer.enable_progress_bar=false",
                "tracking.enabled=false",
                "train.seeds=null",
                "train.resume=false",
                f"paths.checkpoints={scratch / 'checkpoints'}",
            ],
            root=ROOT,
        )
        preflight(cfg)
        torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))  # as Lightning sets it for both sides
        data = load_prepared(cfg, scratch=scratch / f"prepared-{competition}")
        choose_from_data(cfg, data)  # model.max_length and class_weights auto, as `podium train` resolves them
        inputs = fold_inputs(FoldSpec.of(cfg), data, data.train["fold"].to_numpy() == 0)
        initial = copy.deepcopy(inputs.net)
        batch = cfg.model.batch_size
        runs, peak = {"plain": [], "lightning": [], "podium": [], "ratio": []}, None
        for rep in range(repeats + 1):  # the first round warms up (allocator, caches) and is dropped
            sides = ("plain", "lightning", "podium")
            speeds = {}
            for side in sides if rep % 2 else sides[::-1]:  # alternate which goes first
                window = _Window(warmup, n, device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                if side == "plain":
                    plain_run(cfg, inputs, copy.deepcopy(initial), window, device)
                elif side == "lightning":
                    lightning_run(cfg, inputs, copy.deepcopy(initial), window)
                else:
                    podium_run(cfg, inputs, copy.deepcopy(initial), window)
                    if device.type == "cuda":
                        peak = torch.cuda.max_memory_allocated(device) / 2**20
                speeds[side] = n * batch / window.seconds
            if rep:
                for side, speed in speeds.items():
                    runs[side].append(speed)
                runs["ratio"].append(speeds["podium"] / speeds["plain"])
        results[precision] = {
            side: Measured(statistics.median(runs[side])) for side in ("plain", "lightning", "podium")
        }
        results[precision]["podium"].peak_gpu_mb = peak
        results[precision]["ratio"] = statistics.median(runs["ratio"])
        if precision == precisions[-1]:
            loaded = []
            for _ in range(repeats):
                window = _Window(warmup, n, device)
                loader_run(cfg, inputs, window)
                loaded.append(n * batch / window.seconds)
            results["loader"] = Measured(statistics.median(loaded))
    results["batch"] = cfg.model.batch_size
    return results


def report(measured: dict[str, dict], accelerator: str, precisions: tuple[str, ...]) -> str:
    from pipeline.report import table

    lines = []
    gpu = accelerator == "gpu"
    rows = []
    for family, r in measured.items():
        for precision in precisions:
            plain, bare, podium = (r[precision][side].samples_per_s for side in ("plain", "lightning", "podium"))
            row = [
                family,
                r["batch"],
                precision,
                f"{plain:,.0f}",
                f"{bare:,.0f}",
                f"{podium:,.0f}",
                f"{r[precision]['ratio']:.3f}x",
                f"{podium / bare:.3f}x",
            ]
            rows.append(row + ([f"{r[precision]['podium'].peak_gpu_mb:,.0f}"] if gpu else []))
    lines.append(
        "Overhead: training samples/s of a hand-written loop, a bare Lightning Trainer and Podium (target podium/plain >= 0.95x)"
    )
    lines.append(
        table(
            ["family", "batch", "precision", "plain", "lightning", "podium", "podium/plain", "podium/lightning"]
            + (["peak GPU MiB"] if gpu else []),
            rows,
        )
    )
    if set(PRECISIONS) <= set(precisions):
        rows = [
            [
                family,
                f"{r['32-true']['podium'].samples_per_s:,.0f}",
                f"{r['bf16-mixed']['podium'].samples_per_s:,.0f}",
                f"{r['bf16-mixed']['podium'].samples_per_s / r['32-true']['podium'].samples_per_s:.2f}x",
            ]
            for family, r in measured.items()
        ]
        lines.append("\nPrecision: Podium samples/s")
        lines.append(table(["family", "32-true", "bf16-mixed", "bf16/32"], rows))
    else:
        lines.append(
            "\nPrecision: bf16-mixed not measured: this machine does not compute bf16 natively, so "
            "trainer.precision=auto does not pick it here (--precisions 32-true bf16-mixed measures it all the same)"
        )
    fastest = precisions[-1]  # the precision a training on this machine uses
    rows = [
        [
            family,
            f"{r['loader'].samples_per_s:,.0f}",
            f"{r[fastest]['podium'].samples_per_s:,.0f}",
            f"{r['loader'].samples_per_s / r[fastest]['podium'].samples_per_s:,.0f}x",
        ]
        for family, r in measured.items()
    ]
    lines.append(f"\nInput pipeline: the training loader alone vs the model's consumption ({fastest}; target >= 5x)")
    lines.append(table(["family", "loader samples/s", "model samples/s", "loader/model"], rows))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--repeats", type=int, default=4, help="measured rounds (plain, lightning, podium) per family and precision"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the timed batches (0.2: a quick check)")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="default: 32-true, and bf16-mixed where this machine computes bf16 natively",
    )
    args = parser.parse_args()
    precisions = tuple(p for p in PRECISIONS if p in (args.precisions or native_precisions(args.accelerator)))

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{torch.cuda.get_device_name() if args.accelerator == 'gpu' else 'CPU'}",
        flush=True,
    )
    measured = {}
    with tempfile.TemporaryDirectory(prefix="podium-speed-") as scratch:
        for family in args.families:
            started = time.perf_counter()
            measured[family] = measure_family(
                family, args.accelerator, args.repeats, args.scale, Path(scratch), precisions
            )
            print(f"  {family}: measured in {time.perf_counter() - started:.0f} s", flush=True)
    print(report(measured, args.accelerator, precisions))


if __name__ == "__main__":
    main()
