"""Which devices this machine has, by name, for the Run and Attributions tabs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    key: str  # what torch.device takes: "cpu", "cuda:0", "mps"
    label: str  # what a person reads: "CPU (2 threads)", "cuda:0 — NVIDIA H100 80GB HBM3"
    kind: str  # "cpu" | "cuda" | "mps"


def available_devices() -> list[DeviceInfo]:
    """CPU always; each CUDA GPU by name; Apple MPS where PyTorch reports it."""
    import torch

    devices = [DeviceInfo("cpu", f"CPU ({torch.get_num_threads()} threads)", "cpu")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            devices.append(DeviceInfo(f"cuda:{index}",
                                      f"cuda:{index} — {torch.cuda.get_device_name(index)}", "cuda"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(DeviceInfo("mps", "mps — Apple GPU", "mps"))
    return devices


def resolve_device(key: str) -> DeviceInfo:
    """The DeviceInfo for `key` ("cuda" means cuda:0); ValueError naming what exists."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"device must be a name such as 'cpu' or 'cuda:0', got {key!r}")
    key = key.strip().lower()
    if key == "cuda":
        key = "cuda:0"
    devices = available_devices()
    for device in devices:
        if device.key == key:
            return device
    names = ", ".join(d.key for d in devices)
    if key.startswith("cuda"):
        raise ValueError(f"device {key!r} is not available: this machine has no such CUDA GPU "
                         f"(available: {names})")
    raise ValueError(f"unknown device {key!r}; available on this machine: {names}")


# What a device dropdown shows before torch is imported (the page must not wait for torch
# to start): the CPU, and the --device option's choice, which __main__ has already checked.
def initial_choices(default: str) -> list[tuple[str, str]]:
    choices = [("CPU", "cpu")]
    if default != "cpu":
        choices.append((default, default))
    return choices


def device_choices() -> list[tuple[str, str]]:
    """(label, key) of every device, for a dropdown filled in when the page loads."""
    return [(device.label, device.key) for device in available_devices()]
