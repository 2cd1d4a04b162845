"""What a study is: a base network, one knob and its values, seeds, data, recipe and the
attribution methods to score, written once into the study (Optuna user attribute "spec",
JSON) so that every worker, on any machine, builds the same trials from the name alone.

The data is a `resnext.data.from_spec` mapping with its own data seed: every trial of a
study trains and tests on the very same images. A trial's seed varies what a seed should
vary between repeats of one experiment: the network's initialisation, the order of the
training images and the augmentation (`resnext.train.fit(seed=...)`).

Construction checks the spec's shape and ranges without torch; `plan` (resnext.study)
checks every network it gives, and `create` builds the data once.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import ResNeXtConfig
from ..validation import whole_number
from .knobs import parse_values

SPEC_FORMAT = 1
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SEED_RANGE = (0, 2**31 - 1)  # resnext.train.fit's seed range
MAX_SEEDS = 100
RECOMMENDED_SEEDS = 3
N_IMAGES_RANGE = (1, 100_000)  # resnext.explain.evaluate's number of test images
# Heartbeats (seconds): a worker writes one every HEARTBEAT seconds while it trains; a
# running trial without one for GRACE seconds is taken to be dead and is queued again.
DEFAULT_HEARTBEAT, DEFAULT_GRACE = 20, 90
HEARTBEAT_RANGE = (1, 3600)
DEFAULT_METHODS = ("saliency", "gradcam")
DEFAULT_N_IMAGES = 64
# A generated dataset (shapes and its variants) as a study trains on it by default: big
# enough for differences of a few points to show, small enough for a 15-trial study to
# finish on a CPU in minutes.
SHAPES_DEFAULTS = {"train": 2000, "test": 500, "image_size": 32}


def data_spec(name: str, *, train_size: int | None = None, test_size: int | None = None,
              image_size: int | None = None, seed: int = 0, root: str | None = None,
              shortcut: float | None = None) -> dict[str, Any]:
    """The `resnext.data.from_spec` mapping of a dataset as --data names it: any name of the
    data registry (resnext.data.DATASETS: "shapes", "shapes-shortcut", "shapes-distractors",
    "cifar10", "cifar100" with root the folder of the archive) or "folder:PATH"."""
    from ..data.registry import DATASETS, PATH_SEPARATOR, argument_forms

    base, separator, path = str(name).partition(PATH_SEPARATOR)
    entry = DATASETS.get(base) if isinstance(name, str) else None
    if entry is None or (separator and not (entry.takes_path and path)):
        raise ValueError(f"--data must be one of {', '.join(argument_forms())}, got {name!r}")
    root = path or root
    if entry.generated:
        spec: dict[str, Any] = {
            "name": entry.name, "seed": seed,
            "image_size": SHAPES_DEFAULTS["image_size"] if image_size is None else image_size,
            "sizes": {"train": SHAPES_DEFAULTS["train"] if train_size is None else train_size,
                      "test": SHAPES_DEFAULTS["test"] if test_size is None else test_size}}
        if entry.marker:  # the registry's default marker probability unless one is given
            spec["shortcut"] = entry.options["shortcut"] if shortcut is None else shortcut
        return spec
    if not root:
        raise ValueError(f"--data {entry.name} needs --data-root, the folder that holds it")
    spec = {"name": entry.name, "root": str(root)}
    if entry.takes_path:
        spec.update(image_size=entry.image_size if image_size is None else image_size,
                    seed=seed)
    limits = {k: v for k, v in (("train", train_size), ("test", test_size)) if v is not None}
    if limits:
        spec["limit"] = limits
    return spec


@dataclass(frozen=True)
class SearchSpec:
    """A multi-objective search (NSGA-II) over C, d and blocks per stage within a MAC budget,
    with test accuracy and one attribution metric as objectives."""

    budget_macs: int
    trials: int
    cardinalities: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    blocks: tuple[str, ...] = ()  # "1,1,1"-style layouts; () = the base network's only
    objective: str = "gradcam:energy"  # method:metric, the second objective
    population: int = 0  # NSGA-II population; 0 = about the square root of trials

    def __post_init__(self) -> None:
        whole_number("--budget-macs", self.budget_macs, 1, 10**15)
        whole_number("--trials", self.trials, 2, 10_000)
        object.__setattr__(self, "cardinalities",
                           parse_values("cardinality", list(self.cardinalities)))
        if self.blocks:
            object.__setattr__(self, "blocks", parse_values("blocks", list(self.blocks)))
        method, _, metric = self.objective.partition(":")
        from ..explain.names import ALL_METRICS, METHOD_ROWS

        if method not in METHOD_ROWS or metric not in ALL_METRICS:
            raise ValueError(f"--objective must be method:metric with a method of "
                             f"{', '.join(METHOD_ROWS)} and a metric of "
                             f"{', '.join(ALL_METRICS)}, "
                             f"got {self.objective!r}")
        population = self.population or max(2, round(self.trials ** 0.5))
        object.__setattr__(self, "population",
                           whole_number("--population", population, 2, self.trials))

    @property
    def method(self) -> str:
        return self.objective.partition(":")[0]

    @property
    def metric(self) -> str:
        return self.objective.partition(":")[2]


@dataclass(frozen=True)
class StudySpec:
    """A study: the knob's values x the seeds, each trained as an ordinary run and scored."""

    name: str
    base: ResNeXtConfig
    knob: str = "cardinality"
    values: tuple[Any, ...] = ()
    keep_complexity: bool = False
    seeds: tuple[int, ...] = (0, 1, 2)
    data: Mapping[str, Any] = field(default_factory=lambda: data_spec("shapes"))
    epochs: int = 5
    batch_size: int = 128
    recipe: str = "quick"
    lr: float | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    n_images: int = DEFAULT_N_IMAGES
    heartbeat: int = DEFAULT_HEARTBEAT
    grace: int = DEFAULT_GRACE
    search: SearchSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(f"the study name must be 1-64 letters, digits, '.', '_' or '-' "
                             f"(starting with a letter or digit), got {self.name!r}")
        if not isinstance(self.base, ResNeXtConfig):
            raise ValueError(f"base must be a ResNeXtConfig, got {type(self.base).__name__}")
        if self.search is not None:  # a search samples C, d and blocks: no grid knob
            object.__setattr__(self, "knob", "search")
            object.__setattr__(self, "values", ())
        else:
            object.__setattr__(self, "values", parse_values(self.knob, self.values))
            if self.keep_complexity and self.knob != "cardinality":
                raise ValueError(f"--keep-complexity applies to --knob cardinality (it solves "
                                 f"d for each C), not to {self.knob}")
        self._check_seeds()
        self._check_numbers()
        self._check_methods()
        if not isinstance(self.data, Mapping) or "name" not in self.data:
            raise ValueError("data must be a resnext.data spec mapping with a 'name'")

    def _check_seeds(self) -> None:
        seeds = tuple(whole_number("--seeds", seed, *SEED_RANGE) for seed in self.seeds)
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise ValueError(f"--seeds must list 1 to {MAX_SEEDS} seeds, got {len(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds repeats a seed: {','.join(map(str, seeds))}")
        object.__setattr__(self, "seeds", seeds)

    def _check_numbers(self) -> None:
        whole_number("--epochs", self.epochs, 1, 10_000)
        whole_number("--batch-size", self.batch_size, 1, 65_536)
        whole_number("--n-images", self.n_images, *N_IMAGES_RANGE)
        whole_number("--heartbeat", self.heartbeat, *HEARTBEAT_RANGE)
        whole_number("--grace", self.grace, self.heartbeat + 1, 100 * HEARTBEAT_RANGE[1])
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and 0 < self.lr < 100):
            raise ValueError(f"--lr must be a positive number below 100, got {self.lr!r}")

    def _check_methods(self) -> None:
        from ..explain.names import METHOD_ROWS

        methods = tuple(self.methods)
        unknown = [m for m in methods if m not in METHOD_ROWS]
        if unknown:
            raise ValueError(f"--methods: unknown method(s) {', '.join(unknown)}; known: "
                             f"{', '.join(METHOD_ROWS)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"--methods repeats a method: {','.join(methods)}")
        if self.search is not None and self.search.method not in methods:
            methods += (self.search.method,)  # the objective's method is always scored
        object.__setattr__(self, "methods", methods)

    @property
    def mode(self) -> str:
        return "grid" if self.search is None else "search"

    @property
    def image_size(self) -> int:
        """The side the networks are counted at (the data's, 32 when the spec has none)."""
        return int(self.data.get("image_size", 32))

    @property
    def few_seeds(self) -> bool:
        return len(self.seeds) < RECOMMENDED_SEEDS

    def grid(self) -> list[dict[str, Any]]:
        """Every trial's params, seed by seed: each point has a first seed early."""
        return [{"value": value, "seed": seed} for seed in self.seeds for value in self.values]

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(format=SPEC_FORMAT, base=self.base.to_dict(), values=list(self.values),
                    seeds=list(self.seeds), methods=list(self.methods), data=dict(self.data))
        if self.search is not None:
            data["search"] = {**dataclasses.asdict(self.search),
                              "cardinalities": list(self.search.cardinalities),
                              "blocks": list(self.search.blocks)}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudySpec":
        values = dict(data)
        found = values.pop("format", None)
        if found != SPEC_FORMAT:
            raise ValueError(f"this study was written in spec format {found!r}; this version "
                             f"reads format {SPEC_FORMAT}")
        values["base"] = ResNeXtConfig.from_dict(values["base"])
        for key in ("values", "seeds", "methods"):
            values[key] = tuple(values.get(key, ()))
        if values.get("search") is not None:
            search = dict(values["search"])
            search["cardinalities"] = tuple(search["cardinalities"])
            search["blocks"] = tuple(search["blocks"])
            values["search"] = SearchSpec(**search)
        return cls(**values)
