"""What a study will be, before anything runs: the Study tab's controls (or /study_create's
arguments) as a `resnext.study.StudySpec`, Table 2's values for the network in hand, the plan
and the estimate.

Every rule is the library's: the spec checks its name, knob, values, seeds and methods,
`resnext.study.plan` checks every network a value gives, and the data registry says which
datasets exist (a dataset added there appears here with no change). A refused value reaches
the page as the library's message, which names the argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from resnext import complexity, study
from resnext.data.registry import DATASETS, entry, request_spec
from resnext.explain.names import METHOD_ROWS, ROW_LABELS
from resnext.study.knobs import KEEP_BY, KNOBS, largest_width, matching_width, width_range
from resnext.study.spec import DEFAULT_METHODS, DEFAULT_N_IMAGES, N_IMAGES_RANGE, SHAPES_DEFAULTS
from resnext.train import limits
from resnext.units import duration
from resnext.validation import whole_number

from ..selection import Selection

# The paper's Table 2 (Xie et al. 2017): C = 1, 2, 4, 8, 32 at ResNet-50's cost, d solved
# for each C (resnext.study.knobs: by parameters, as the table keeps them).
TABLE2_CARDINALITIES = (1, 2, 4, 8, 32)
# Where the controls start; the limits are the library's (StudySpec, resnext.train.limits).
DEFAULTS = {"knob": "cardinality", "values": "1,2,4", "seeds": "0,1,2", "data": "shapes",
            "image_size": SHAPES_DEFAULTS["image_size"], "train_size": SHAPES_DEFAULTS["train"],
            "test_size": SHAPES_DEFAULTS["test"], "epochs": 5, "batch_size": 128,
            "methods": list(DEFAULT_METHODS), "n_images": DEFAULT_N_IMAGES}
N_IMAGES = N_IMAGES_RANGE


def dataset_choices() -> list[tuple[str, str]]:
    """(label, name) of every dataset of the data registry that needs no path."""
    return [(item.description, item.name) for item in DATASETS.values() if not item.takes_path]


def knob_choices() -> list[tuple[str, str]]:
    return [(f"{name}: {what}", name) for name, (what, _, _) in KNOBS.items()]


def method_choices() -> list[tuple[str, str]]:
    return [(ROW_LABELS.get(name, name), name) for name in METHOD_ROWS]


def parse_seeds(text: Any) -> tuple[int, ...]:
    """"0,1,2" (or a list) as seeds; their range and number are the spec's to check."""
    items = [s.strip() for s in text.split(",") if s.strip()] if isinstance(text, str) \
        else list(text or [])
    if not items:
        raise ValueError("seeds: give one or more whole numbers separated by commas, e.g. 0,1,2")
    try:
        return tuple(int(item) if isinstance(item, str) else item for item in items)
    except ValueError:
        raise ValueError(f"seeds must be whole numbers separated by commas, got {text!r}") from None


def data_for(data: Any, image_size: Any, train_size: Any, test_size: Any,
             data_dir: Path) -> dict[str, Any]:
    """The `resnext.data` spec of the chosen dataset (registry name, sizes, side)."""
    chosen = entry(data)
    if chosen.takes_path:
        raise ValueError(f"dataset {data!r} needs a path; choose one of "
                         f"{', '.join(name for _, name in dataset_choices())}")
    side = None if chosen.fixed_image_size else whole_number(
        "image size", image_size, *limits.IMAGE_SIZE_RANGE)
    # A fixed set is read from the data directory, absolute: workers may start elsewhere.
    root = None if chosen.generated else Path(data_dir).resolve()
    return request_spec(
        chosen.name, root=root, image_size=side,
        n_train=whole_number("training images", train_size, *limits.TRAIN_IMAGES_RANGE),
        n_test=whole_number("test images", test_size, *limits.TEST_IMAGES_RANGE))


def base_network(selection: Selection, data: Any) -> Any:
    """The Architecture tab's network with the dataset's number of classes."""
    classes = entry(data).num_classes
    return selection.config if classes is None else selection.config.replace(num_classes=classes)


def make_spec(name: Any, selection: Selection, knob: Any, values: Any, keep_complexity: Any,
              seeds: Any, data: Any, image_size: Any, train_size: Any, test_size: Any,
              epochs: Any, batch_size: Any, methods: Sequence[str] | None, n_images: Any,
              data_dir: Path) -> study.StudySpec:
    """The study the controls describe, checked by the library (spec, then every network)."""
    spec = study.StudySpec(
        name=(name or "").strip() if isinstance(name, str) else name,
        base=base_network(selection, data), knob=knob, values=values,
        keep_complexity=bool(keep_complexity), seeds=parse_seeds(seeds),
        data=data_for(data, image_size, train_size, test_size, data_dir),
        epochs=whole_number("epochs", epochs, *limits.EPOCHS_RANGE),
        batch_size=whole_number("batch size", batch_size, *limits.BATCH_RANGE),
        methods=tuple(methods or ()), n_images=whole_number("images scored", n_images, *N_IMAGES))
    study.plan(spec)  # a value that gives no valid network is refused here, by name
    return spec


def table2(selection: Selection, data: Any, image_size: Any) -> tuple[str, str]:
    """Table 2's cardinalities that keep the base network's cost at its own width on this
    dataset, as the values text, and a note saying which were left out and why."""
    chosen = entry(data)
    side = chosen.image_size if chosen.fixed_image_size else whole_number(
        "image size", image_size, *limits.IMAGE_SIZE_RANGE)
    base = base_network(selection, data)
    target = getattr(complexity(base, side), KEEP_BY)
    kept, dropped = [], []
    for cardinality in TABLE2_CARDINALITIES:
        try:
            low, _ = width_range(base, cardinality)
            fits = largest_width(base, cardinality, target, side, KEEP_BY) is not None
        except ValueError as error:
            dropped.append(f"C = {cardinality} ({error})")
            continue
        if fits:
            kept.append(cardinality)
        else:
            dropped.append(f"C = {cardinality} (even its narrowest path, d = {low}, has more "
                           f"{KEEP_BY} than the base network at base_planes {base.base_planes})")
    widths = ", ".join(f"C = {c}: d = {matching_width(base, c, side)}" for c in kept)
    note = (f"Table 2 at {base.name}'s {KEEP_BY} on {chosen.name} ({side} px): {widths}.")
    if dropped:
        note += " Left out: " + "; ".join(dropped) + "."
    return ",".join(map(str, kept)), note


def plan_markdown(spec: study.StudySpec) -> str:
    """Every point's network and cost against the base network, and the library's notes."""
    planned = study.plan(spec)
    lines = [f"**{planned['trials']} trials**: {len(spec.values)} values × "
             f"{len(spec.seeds)} seeds.", "",
             "| value | network | MACs (× base) | params (× base) |", "|---|---|---|---|"]
    for point in planned["points"]:
        lines.append(f"| {point['value']} | {point['name']} | {point['macs']:,} "
                     f"({point['macs_ratio']:.2f}) | {point['params']:,} "
                     f"({point['params_ratio']:.2f}) |")
    lines += [f"\n*{note}*" for note in planned["notes"]]
    return "\n".join(lines)


def estimate(spec: study.StudySpec, devices: Sequence[str]) -> dict[str, Any]:
    """The library's estimate (trials × each point's per-run estimate, dealt to one worker
    per device), measured on the first device; with the sentence the page shows."""
    devices = list(devices) or ["cpu"]
    found = study.estimate(spec, device=devices[0], workers=len(devices))
    per_trial = found["total_seconds"] / max(1, found["trials"])
    found["text"] = (
        f"**Estimate:** {found['trials']} trials × about {duration(per_trial)} per trial "
        f"(training + scoring, measured on {devices[0]}) / {len(devices)} "
        f"worker{'s' if len(devices) != 1 else ''} ≈ **{duration(found['wall_seconds'])}**")
    return found


def check_devices(devices: Any) -> list[str]:
    """The chosen devices, each one this machine has (`shared.devices`), named as torch
    names it; at least one."""
    from ..shared.devices import resolve_device

    if isinstance(devices, str):
        devices = [devices]
    if not devices:
        raise ValueError("devices: choose at least one device to run a worker on")
    return list(dict.fromkeys(resolve_device(device).key for device in devices))
