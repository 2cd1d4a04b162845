"""Move trained weights between the three forms of the paper's Fig. 3.

Form (c) is the canonical layout (torchvision's). A grouped conv with C groups is C
independent convs on channel slices, and BN is per channel, so slicing (c)'s tensors into
C pieces gives the paths of (a)/(b), and concatenating them gives (c) back, exactly.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .config import BLOCK_FORMS, ResNeXtConfig
from .plan import network_plan

StateDict = Mapping[str, torch.Tensor]

_BN_PER_CHANNEL = ("weight", "bias", "running_mean", "running_var")
_PATH_BNS = ("bn1", "bn2")
_PATH_CONVS = ("conv1", "conv2")


def _block_prefixes(cfg: ResNeXtConfig) -> list[str]:
    return [f"{stage.name}.{i}." for stage in network_plan(cfg) for i in range(len(stage.blocks))]


def _block_to_c(block: dict[str, torch.Tensor], form: str, cardinality: int) -> dict[str, torch.Tensor]:
    """Local state of one (a)/(b) block -> the same block in form (c)."""
    if form == "c":
        return block
    out = {k: v for k, v in block.items() if not k.startswith("paths.")}
    paths = [f"paths.{i}." for i in range(cardinality)]
    for conv in _PATH_CONVS:
        out[f"{conv}.weight"] = torch.cat([block[p + f"{conv}.weight"] for p in paths], dim=0)
    for bn in _PATH_BNS:
        for field in _BN_PER_CHANNEL:
            out[f"{bn}.{field}"] = torch.cat([block[p + f"{bn}.{field}"] for p in paths], dim=0)
        out[f"{bn}.num_batches_tracked"] = block[paths[0] + f"{bn}.num_batches_tracked"]
    if form == "a":
        # Each path's expand conv reads its own w channels: (c)'s conv3 columns, side by side.
        out["conv3.weight"] = torch.cat([block[p + "conv3.weight"] for p in paths], dim=1)
    return out


def _block_from_c(block: dict[str, torch.Tensor], form: str, cardinality: int) -> dict[str, torch.Tensor]:
    """Local state of one form-(c) block -> the same block in form (a) or (b)."""
    if form == "c":
        return block
    out = {k: v for k, v in block.items()
           if not k.split(".")[0] in _PATH_CONVS + _PATH_BNS}
    for conv in _PATH_CONVS:
        for i, piece in enumerate(block[f"{conv}.weight"].chunk(cardinality, dim=0)):
            out[f"paths.{i}.{conv}.weight"] = piece.clone()
    for bn in _PATH_BNS:
        for field in _BN_PER_CHANNEL:
            for i, piece in enumerate(block[f"{bn}.{field}"].chunk(cardinality, dim=0)):
                out[f"paths.{i}.{bn}.{field}"] = piece.clone()
        for i in range(cardinality):
            out[f"paths.{i}.{bn}.num_batches_tracked"] = block[f"{bn}.num_batches_tracked"].clone()
    if form == "a":
        del out["conv3.weight"]
        for i, piece in enumerate(block["conv3.weight"].chunk(cardinality, dim=1)):
            out[f"paths.{i}.conv3.weight"] = piece.clone()
    return out


def convert_state_dict(state: StateDict, cfg: ResNeXtConfig, from_form: str, to_form: str
                       ) -> dict[str, torch.Tensor]:
    """A state_dict of `cfg` built in `from_form`, rewritten for `to_form`."""
    for form in (from_form, to_form):
        if form not in BLOCK_FORMS:
            raise ValueError(f"block form must be one of {BLOCK_FORMS}, got {form!r}")
    result = dict(state)
    if from_form == to_form:
        return result
    for prefix in _block_prefixes(cfg):
        local = {k[len(prefix):]: result.pop(k) for k in list(result) if k.startswith(prefix)}
        canonical = _block_to_c(local, from_form, cfg.cardinality)
        converted = _block_from_c(canonical, to_form, cfg.cardinality)
        result.update({prefix + k: v for k, v in converted.items()})
    return result


def convert_form(model: torch.nn.Module, form: str) -> torch.nn.Module:
    """The same function as `model`, rebuilt in Fig. 3 form `form` with its weights moved over.

    The new model has the source's device, dtype and train/eval mode.
    """
    from .model import ResNeXt, build_model

    if not isinstance(model, ResNeXt):
        raise TypeError(f"convert_form takes a model from build_model, got {type(model).__name__}")
    cfg = model.config
    if form not in BLOCK_FORMS:
        raise ValueError(f"form must be one of {BLOCK_FORMS}, got {form!r}")
    # Built on the meta device, then given cloned tensors: no second random init, and the
    # two models never share storage.
    target = build_model(cfg.replace(block_form=form), device="meta")
    state = convert_state_dict(model.state_dict(), cfg, cfg.block_form, form)
    target.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
    return target.train(model.training)
