"""`estimate`: how long a training run will take and how much memory it needs, up front.

Time: a training image costs about 3x its forward multiply-adds (forward, then the
backward pass's two products per layer: input and weight gradients); a test image 1x.
A few real training steps of this network on this device give the achieved MAC rate,
which turns the exact MAC count (`complexity`) into seconds.

Memory: weights, their gradients and SGD's momentum (3 copies of the parameters) plus
every layer's output for the batch, kept for backward (`complexity(...).activations`).
On CUDA the measured peak of the timed steps is used when it is larger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..complexity import complexity
from ..config import ResNeXtConfig
from ..units import byte_size, duration
from ..validation import whole_number
from .limits import BATCH_RANGE, EPOCHS_RANGE

FLOAT32_BYTES = 4
TRAIN_MAC_FACTOR = 3
_MEASURED_STEPS = 2


@dataclass(frozen=True)
class Estimate:
    seconds: float
    peak_bytes: int
    macs_per_second: float  # achieved by the measured training steps
    step_seconds: float  # one measured step at `measured_batch`
    measured_batch: int

    @property
    def phrase(self) -> str:
        return (f"about {duration(self.seconds)}, peak memory about "
                f"{byte_size(self.peak_bytes)}")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "peak_bytes": self.peak_bytes, "phrase": self.phrase,
                "macs_per_second": self.macs_per_second, "step_seconds": self.step_seconds,
                "measured_batch": self.measured_batch}


def estimate(cfg: ResNeXtConfig, data: Any, epochs: int, batch_size: int = 128,
             device: str | torch.device = "cpu") -> Estimate:
    """Seconds and peak bytes of `fit(cfg, data, epochs=..., batch_size=...)` on `device`."""
    from ..model import build_model

    epochs = whole_number("epochs", epochs, *EPOCHS_RANGE)
    batch_size = whole_number("batch_size", batch_size, *BATCH_RANGE)
    device = torch.device(device)
    side = data.image_size
    report = complexity(cfg, side)
    # Measure on a small batch on the CPU (a big one could take long); the rate barely
    # depends on it there. On a GPU small batches under-use the device: use the real one.
    measured = min(batch_size, 16) if device.type == "cpu" else batch_size
    measured = max(BATCH_RANGE[0], measured)  # BatchNorm's smallest batch in training
    model = build_model(cfg, generator=torch.Generator().manual_seed(0)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images = torch.rand(measured, 3, side, side, generator=torch.Generator().manual_seed(0)
                        ).to(device)
    labels = torch.arange(measured, device=device) % cfg.num_classes
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(_MEASURED_STEPS):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    step_seconds = (time.perf_counter() - start) / _MEASURED_STEPS
    rate = TRAIN_MAC_FACTOR * report.macs * measured / step_seconds
    macs_per_epoch = report.macs * (TRAIN_MAC_FACTOR * len(data.train) + len(data.test))
    seconds = epochs * macs_per_epoch / rate
    peak = (3 * report.weight_bytes
            + batch_size * (report.activation_bytes + 3 * side * side * FLOAT32_BYTES))
    if device.type == "cuda" and measured == batch_size:
        peak = max(peak, int(torch.cuda.max_memory_allocated(device)))
    return Estimate(seconds=seconds, peak_bytes=int(peak), macs_per_second=rate,
                    step_seconds=step_seconds, measured_batch=measured)
