"""What a run needs to continue after its last finished epoch, as tensors and JSON.

Tensors (safetensors, `runs.RESUME_TENSORS_FILE`): the model's state dict (`model.<name>`:
the file is whole on its own, so a kill between writing it and model.safetensors cannot
leave weights and optimizer of different epochs), the optimizer's per-parameter state
(`optimizer.<param index>.<key>`: SGD's momentum buffers, AdamW's moments and step counts)
and every process's torch RNG state (`rng.torch.<rank>`, a uint8 tensor; `rng.cuda.<rank>`
on a GPU). JSON (`runs.RESUME_STATE_FILE`): the epoch and step counts, the optimizer's
param groups (hyper-parameters and the rate last set), its non-tensor state, the gradient
scaler's scalars, python's and numpy's RNG states per process, the DistributedSampler's
epoch and the finished epochs' metrics rows. Nothing is pickled.

Why the RNG states: kornia's augmentation draws from torch's global RNG, whose state after
epoch E is not a function of the seed alone. The data order needs no state: the
DistributedSampler draws each epoch's order from `seed + epoch`, and the learning rate is a
function of the global step (`recipes.learning_rate`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = 1  # resume.json's "format": bumped if the layout changes
MODEL_PREFIX = "model."  # the weights' names in the tensors file


def weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict out of the resume tensors."""
    return {name[len(MODEL_PREFIX):]: tensor for name, tensor in tensors.items()
            if name.startswith(MODEL_PREFIX)}


def _rng_of_this_process(device: torch.device) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    json_part = {"python": [version, list(internal), gauss],
                 "numpy": [kind, keys.tolist(), position, has_gauss, cached]}
    tensors = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["cuda"] = torch.cuda.get_rng_state(device)
    return json_part, tensors


def gather_rng(device: torch.device, rank: int, world: int
               ) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]] | None:
    """Every process's RNG states on rank 0 (None on the others): a collective, so every
    process calls it. Under torchrun the states travel between the run's own processes
    (`all_gather_object`, in memory); what is saved is JSON and safetensors."""
    json_part, tensors = _rng_of_this_process(device)
    mine = (json_part, {name: tensor.cpu() for name, tensor in tensors.items()})
    if world > 1:
        everyone: list[Any] = [None] * world
        torch.distributed.all_gather_object(everyone, mine)
    else:
        everyone = [mine]
    if rank != 0:
        return None
    states = [entry[0] for entry in everyone]
    flat = {f"rng.{name}.{r}": tensor for r, entry in enumerate(everyone)
            for name, tensor in entry[1].items()}
    return states, flat


def restore_rng(device: torch.device, rank: int, states: list[dict[str, Any]],
                tensors: dict[str, torch.Tensor]) -> None:
    """This process's RNG states as they were when the epoch was saved."""
    version, internal, gauss = states[rank]["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states[rank]["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors[f"rng.torch.{rank}"])
    if device.type == "cuda" and f"rng.cuda.{rank}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"], device)


def optimizer_parts(optimizer: torch.optim.Optimizer
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) of `optimizer.state_dict()`: tensors keyed optimizer.<index>.<key>."""
    saved = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in saved["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{key: list(value) if isinstance(value, tuple) else value
               for key, value in group.items()} for group in saved["param_groups"]]
    return tensors, {"param_groups": groups, "state": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      saved: dict[str, Any]) -> None:
    """Load what `optimizer_parts` saved into a fresh optimizer of the same recipe."""
    template = optimizer.state_dict()["param_groups"]
    groups = [{key: tuple(value) if isinstance(fresh.get(key), tuple) else value
               for key, value in group.items()}
              for fresh, group in zip(template, saved["param_groups"])]
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in saved["state"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def capture(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
            rng: tuple[list[dict[str, Any]], dict[str, torch.Tensor]], epoch: int,
            global_step: int, world: int, history: list[dict[str, Any]]
            ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) of a run after finished epoch `epoch` (rank 0's view)."""
    tensors, optimizer_json = optimizer_parts(optimizer)
    states, rng_tensors = rng
    tensors.update(rng_tensors)
    tensors.update({f"{MODEL_PREFIX}{name}": tensor for name, tensor in model.state_dict().items()})
    return tensors, {
        "format": FORMAT, "epoch": epoch, "global_step": global_step, "sampler_epoch": epoch,
        "processes": world, "optimizer": optimizer_json,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": states, "history": history}


def restore(model: nn.Module, weights: dict[str, torch.Tensor],
            optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
            tensors: dict[str, torch.Tensor], state: dict[str, Any], device: torch.device,
            rank: int) -> None:
    """The model, optimizer, scaler and this process's RNG as they were after the epoch."""
    model.load_state_dict(weights, strict=True)  # copies in place: memory format is kept
    restore_optimizer(optimizer, tensors, state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng(device, rank, state["rng"], tensors)
