"""The memory budget: refuse work whose estimated memory would not fit, before allocating.

Estimates come from `resnext.complexity` (exact counts, no tensors): float32 weights plus
every layer's output for the batch. Used by the Run tab, the model cache (no model is built
whose weights alone exceed the budget) and the Attributions tab.
"""

from __future__ import annotations

from dataclasses import dataclass

import resnext
from resnext import ResNeXtConfig

from .devices import DeviceInfo

# Bytes per element of each dtype a user can pick; the library's byte counts are float32.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Fraction of free memory a run may plan to use: the rest is left for the app, other users'
# models in the cache and the operating system.
BUDGET_FRACTION = 0.5


# Forms (a)/(b) build C modules per block: resnext101_64x4d in form (a) has ~17,000.
# Building or summarising far more takes minutes of pure Python, whatever the memory.
MAX_MODULES = 20_000


class RunRefused(ValueError):
    """Work that was not started (over budget, out of memory): the message says why."""


def check_module_count(config: ResNeXtConfig, what: str) -> None:
    """Refuse a network with more modules than anyone can build or read in reasonable time."""
    count = resnext.module_count(config)
    if count > MAX_MODULES:
        hint = (" Form (c) computes the same function with one grouped conv per block "
                "instead of C separate paths." if config.block_form != "c" else
                " Use fewer blocks per stage.")
        raise RunRefused(f"{what}: {config.name} in form ({config.block_form}) has "
                         f"{count:,} modules, over the limit of {MAX_MODULES:,}.{hint}")


@dataclass(frozen=True)
class MemoryPlan:
    weight_bytes: int
    activation_bytes: int  # for the whole batch
    budget_bytes: int
    budget_source: str  # what the budget is half of, in words

    @property
    def estimate_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.estimate_bytes <= self.budget_bytes


def free_memory(device: DeviceInfo) -> tuple[int, str]:
    """Free bytes on `device` and where the figure comes from."""
    if device.kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device.key))
        return free, f"free memory on {device.key}"
    import psutil

    # MPS shares the system's unified memory, so RAM is its limit too.
    return psutil.virtual_memory().available, "available RAM"


def memory_plan(config: ResNeXtConfig, image_size: int, batch_size: int, dtype: str,
                device: DeviceInfo, budget_bytes: int | None = None) -> MemoryPlan:
    """Weights + every layer's output for the batch, from `resnext.complexity` (exact counts).

    Conservative on purpose: under inference_mode most outputs are freed as the pass goes,
    but a run the estimate admits will not run out of memory half-way.
    """
    report = resnext.complexity(config, image_size)
    scale = DTYPE_BYTES[dtype] / 4  # the report counts float32 bytes
    if budget_bytes is None:
        free, source = free_memory(device)
        budget_bytes, source = int(free * BUDGET_FRACTION), f"half of the {source}"
    else:
        source = "the given budget"
    return MemoryPlan(int(report.weight_bytes * scale),
                      int(report.activation_bytes * scale * batch_size), budget_bytes, source)


def gigabytes(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:,.2f} GB"


def check_budget(plan: MemoryPlan, what: str) -> None:
    if not plan.fits:
        raise RunRefused(
            f"{what} would need about {gigabytes(plan.estimate_bytes)} (weights "
            f"{gigabytes(plan.weight_bytes)} + activations {gigabytes(plan.activation_bytes)}, a conservative "
            f"estimate), over the budget of {gigabytes(plan.budget_bytes)} ({plan.budget_source}). "
            f"Use a smaller batch, a lower resolution or a smaller network.")
