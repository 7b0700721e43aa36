"""`trainer.precision: auto`: bf16 mixed precision where the hardware computes bf16 natively, else 32-bit.

On a CPU without bf16 instructions (on x86: AVX512-BF16 or AMX), PyTorch's bf16 autocast runs
emulated and is far slower than 32-bit, not faster. Measured on a 2-core AMD EPYC (Zen 3, AVX2
only) with torch 2.13: a small CNN's forward and backward 7.3x slower in bf16 (2,631 ms against
359 ms for 128 images), a Transformer-sized dense block 41x slower (8,134 ms against 197 ms). On a
CPU with AVX512-BF16 the same CNN trained 1.65x faster in bf16. So the CPU preset says `auto`, and
this module picks per machine, once, and says which it picked. An explicit precision always wins.

ARM's bf16 extension is not counted: unmeasured here, so such a CPU gets the safe 32-true.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

log = logging.getLogger(__name__)
AUTO = "auto"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's names for native bf16 arithmetic on x86
CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_bf16_flag(cpuinfo: Path = CPUINFO) -> str | None:
    """The CPU's native-bf16 flag (avx512_bf16, amx_bf16), or None where it has none or cannot tell."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:  # no /proc (macOS, Windows): unknown, so not native
        return None
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return next((flag for flag in CPU_BF16_FLAGS if flag in flags), None)


def resolve(precision: str, accelerator: str, cpuinfo: Path = CPUINFO) -> str:
    """The precision Lightning gets for `trainer.precision`: `auto` resolved for this machine, else as given."""
    if precision != AUTO:
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and _cuda()):
        if cuda_bf16():
            return _said("bf16-mixed", "the GPU computes bf16 natively")
        return _said("16-mixed", "the GPU has no native bf16 (before Ampere)")
    flag = cpu_bf16_flag(cpuinfo)
    if flag:
        return _said("bf16-mixed", f"this CPU computes bf16 natively ({flag})")
    return _said(
        "32-true", "this CPU has no native bf16 (AVX512-BF16 or AMX): emulated, bf16 runs several times slower"
    )


@functools.cache  # said once a process, however often the config is composed (a sweep composes every trial)
def _said(precision: str, why: str) -> str:
    log.info("trainer.precision auto: %s, as %s", precision, why)
    return precision


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cuda_bf16() -> bool:
    """Whether the GPU computes bf16 natively (Ampere and later), not emulated."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
