"""Built models, shared by the Run and Attributions tabs: which weights, and a bounded cache.

A model is keyed by (config, weights, device, dtype). The cache holds a few models (LRU),
so repeated runs don't rebuild and memory stays bounded however many configs users try.
Each entry carries a lock: Captum registers hooks on a model's modules, and two threads
hooking or running one model object at once can interfere, so users of a cached model hold
its lock while they use it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import resnext
from resnext import ResNeXtConfig
from resnext.train import runs

RANDOM = "random"
IMAGENET = "imagenet"
UPLOAD = "upload"
RUN = "run"  # a trained run's folder (resnext.train): config.json + model.safetensors


@dataclass(frozen=True)
class WeightsChoice:
    """Where a model's weights come from.

    - random: Kaiming init from `seed` (maps show gradient structure, predictions are noise);
    - imagenet: a torchvision ImageNet checkpoint, `name` as in resnext.PUBLISHED_WEIGHTS;
    - upload: a user's checkpoint file at `path`, identified by `digest` (its SHA-256);
    - run: a trained run's folder at `path` (`name` its id), identified by `digest` (the
      SHA-256 of its model.safetensors: a run still training changes it every epoch).
    """

    kind: str = RANDOM
    seed: int = 0
    name: str = ""
    path: str = ""
    digest: str = ""

    @property
    def trained(self) -> bool:
        return self.kind != RANDOM

    @property
    def key(self) -> tuple:
        # The file's content, not its temporary path, identifies an upload.
        if self.kind == RANDOM:
            return (RANDOM, self.seed)
        if self.kind == IMAGENET:
            return (IMAGENET, self.name)
        return (self.kind, self.digest)

    @property
    def label(self) -> str:
        if self.kind == RANDOM:
            return f"random (seed {self.seed})"
        if self.kind == IMAGENET:
            return f"ImageNet: {self.name}"
        if self.kind == RUN:
            return f"trained run {self.name}"
        return f"uploaded checkpoint {self.digest[:12]}"


def build_weighted_model(config: ResNeXtConfig, weights: WeightsChoice, device: str = "cpu",
                         dtype: str = "float32") -> Any:
    """A new eval-mode model with `weights`, on `device` in `dtype` (no caching).

    Refuses (RunRefused) a network whose weights alone exceed the memory budget, before
    allocating anything: every path that builds a model comes through here.
    """
    import torch

    from .devices import resolve_device
    from .memory import check_budget, check_module_count, memory_plan

    check_module_count(config, "Building the model")
    check_budget(memory_plan(config, 1, 0, dtype, resolve_device(device)),
                 f"Building {config.name}")
    if weights.kind == RANDOM:
        # A private generator: builds in other threads can't change which weights a seed gives.
        model = resnext.build_model(config, generator=torch.Generator().manual_seed(weights.seed))
    else:
        # Built on the meta device, then given the checkpoint's tensors: no wasted random init.
        model = resnext.build_model(config, device="meta")
        model.to_empty(device="cpu")
        load_into(model, weights)
    return model.to(device=torch.device(device), dtype=getattr(torch, dtype)).eval()


def load_into(model: Any, weights: WeightsChoice) -> None:
    """Give a model built on the meta device (then emptied) the checkpoint's tensors."""
    if weights.kind == RUN:  # our own runs are safetensors: nothing in them can run code
        model.load_state_dict(runs.load_weights(Path(weights.path)), strict=True)
        return
    source = weights.name if weights.kind == IMAGENET else weights.path
    resnext.load_weights(model, source)


@dataclass
class CachedModel:
    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelCache:
    """A small LRU of built models. Thread-safe; building happens outside the cache lock."""

    def __init__(self, capacity: int = 3,
                 builder: Callable[..., Any] = build_weighted_model) -> None:
        self.capacity = capacity
        self._builder = builder
        self._entries: OrderedDict[tuple, CachedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._build_locks: dict[tuple, threading.Lock] = {}
        self.builds = 0  # how many models were built (tests and benchmarks read it)

    @staticmethod
    def key(config: ResNeXtConfig, weights: WeightsChoice, device: str, dtype: str) -> tuple:
        return (config, weights.key, device, dtype)

    def get(self, config: ResNeXtConfig, weights: WeightsChoice, device: str = "cpu",
            dtype: str = "float32") -> CachedModel:
        key = self.key(config, weights, device, dtype)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            build_lock = self._build_locks.setdefault(key, threading.Lock())
        with build_lock:  # one build per key, even when two users ask at once
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    return entry
            model = self._builder(config, weights, device, dtype)
            entry = CachedModel(model)
            with self._lock:
                self._entries[key] = entry
                self.builds += 1
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
                self._build_locks.pop(key, None)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple) -> bool:
        return key in self._entries


# The app's one cache, shared by every user: entries are read-only models behind locks.
MODEL_CACHE = ModelCache()
