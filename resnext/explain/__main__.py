"""`python -m resnext.explain RUN_DIR`: score attribution methods on a trained run, as the
app's Evaluate tab does.

    python -m resnext.explain runs/shapes-c8 --methods saliency,gradcam --images 48 \
        --target label --json            # what the app's /evaluate returns
    python -m resnext.explain runs/shapes-c8 --csv table.csv      # the table, also as CSV
    python -m resnext.explain runs/shapes-c8 --sanity --json      # what /sanity_check returns

The run folder is read with `resnext.train.load_run` and its test split rebuilt from its
config (`resnext.data.from_spec`); a progress bar goes to stderr. Exit status: 0 done (130
when interrupted: the methods finished are printed), 2 a refused argument or run (one line
on stderr says why).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from .names import DEFAULT_ROWS, METHOD_ROWS, METRIC_LABELS, ROW_LABELS, TARGETS

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
PROG = "python -m resnext.explain"


def _masked_datasets() -> str:
    """The datasets whose test split marks every object pixel, as the data registry says."""
    from ..data.registry import DATASETS

    return ", ".join(name for name, entry in DATASETS.items() if entry.masks)


class Refused(Exception):
    """An argument or run this command cannot use: printed as one line, exit status 2."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Score attribution methods on a trained run whose test split "
                               f"knows every object pixel ({_masked_datasets()}): energy in "
                               "the mask, pointing game, deletion/insertion AUC, and the share "
                               "on the shortcut marker or on distractors where there are any.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (config.json, "
                                                                  "model.safetensors)")
    p.add_argument("--methods", default=",".join(DEFAULT_ROWS),
                   help=f"comma-separated rows, of: {', '.join(METHOD_ROWS)} "
                        f"(default: the eight methods, IG once per baseline)")
    p.add_argument("--images", default="200", help="the first N test images (default 200)")
    p.add_argument("--target", default="label",
                   help=f"the class each map explains: {' or '.join(TARGETS)} (default label)")
    p.add_argument("--seed", default="0", help="noise and tie-break seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (the app's "
                                                       "/evaluate or /sanity_check answer)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV")
    p.add_argument("--sanity", action="store_true",
                   help="run the cascading randomization check instead (Adebayo et al. 2018)")
    return p


def checked_methods(text: str, sanity: bool) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_ROWS]
    if unknown or not methods:
        raise Refused(f"--methods: unknown {', '.join(map(repr, unknown)) or 'nothing'}; "
                      f"choose from {', '.join(METHOD_ROWS)}")
    if sanity:
        methods = [m for m in methods if m != "random"]
        if not methods:
            raise Refused("--methods: the sanity check needs a method besides 'random'")
    return methods


def whole(flag: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise Refused(f"{flag} must be a whole number in [{low}, {high}], got {text!r}") from None
    if not low <= value <= high:
        raise Refused(f"{flag} must be a whole number in [{low}, {high}], got {value}")
    return value


def load(run_dir: Path) -> tuple[Any, Any]:
    """(model, dataset pair) of a run whose test split has object masks."""
    from .. import data
    from ..train import load_run

    if not run_dir.is_dir():
        raise Refused(f"RUN_DIR: no such folder: {run_dir}")
    try:
        _, model, meta = load_run(run_dir)
        pair = data.from_spec(meta["data"])
    except KeyError as error:
        raise Refused(f"RUN_DIR: its config.json's data section has no {error}") from None
    except (ValueError, OSError, RuntimeError) as error:  # RunError, a dataset not on disk
        raise Refused(f"RUN_DIR: {error}") from None
    if pair.test.masks is None:
        raise Refused(f"RUN_DIR: {run_dir.name} was trained on {pair.name}, whose test split "
                      f"has no object masks; evaluation needs ground truth "
                      f"({_masked_datasets()})")
    return model, pair


class ProgressBar:
    """A tqdm bar on stderr fed by the library's progress events."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event["total"], file=sys.stderr, unit="step", leave=False)
        self.bar.n = min(event["done"], event["total"])
        method = ROW_LABELS.get(event.get("method", ""), event.get("step", ""))
        self.bar.set_description(str(method))
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def table(result: Any) -> str:
    """The evaluation as aligned text: one row per method, then the random-map reference."""
    metrics = result.to_json()["metrics"]
    header = ["method"] + [METRIC_LABELS[m] for m in metrics] + ["maps (s)"]
    rows = [[row["label"]] + [f"{row[m]:.3f}" for m in metrics] + [f"{row['seconds']:.2f}"]
            for row in result.rows]
    rows.append(["random map (reference)"] + [
        "" if result.random_line(m) is None else f"{result.random_line(m):.3f}" for m in metrics]
        + [""])
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in [header, *rows]]
    summary = (f"{len(result.indices)} test images of {result.run_id} ({result.dataset}); "
               f"accuracy on them {result.accuracy:.1%}; {result.seconds:.1f} s"
               + ("" if result.complete else "; interrupted: the methods finished"))
    return "\n".join([summary, *lines])


def sanity_table(result: Any) -> str:
    """The randomization curves as text: one line per method and measure."""
    lines = [f"similarity to the trained maps as weights are re-initialised: "
             f"{' -> '.join(result.steps)}"]
    for method, by_measure in result.curves.items():
        for measure, values in by_measure.items():
            shown = " ".join("  nan" if value != value else f"{value:5.2f}" for value in values)
            lines.append(f"{result.labels.get(method, method):32s} {measure:8s} {shown}")
    return "\n".join(lines)


def run(args: argparse.Namespace, progress: Callable[[dict[str, Any]], None],
        should_stop: Callable[[], bool]) -> Any:
    """The evaluation (or sanity check) the arguments ask for."""
    from .evaluation import evaluate, sanity_check

    methods = checked_methods(args.methods, args.sanity)
    images = whole("--images", args.images, 1, 100_000)
    seed = whole("--seed", args.seed, 0, 2 ** 31 - 1)
    if args.target not in TARGETS:
        raise Refused(f"--target must be one of {', '.join(TARGETS)}, got {args.target!r}")
    if args.sanity and args.csv:
        raise Refused("--csv: the sanity check has no table; leave --csv out with --sanity")
    model, pair = load(args.run_dir)
    common = dict(seed=seed, on_progress=progress, should_stop=should_stop)
    if args.sanity:
        return sanity_check(model, pair.test, methods, images, pair.mean, pair.std, args.target,
                            **common)
    return evaluate(model, pair.test, methods, images, pair.mean, pair.std, args.target,
                    keep_maps=False, run_id=args.run_dir.resolve().name, dataset=pair.name,
                    **common)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    bar = ProgressBar()
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        # The first Ctrl-C stops after the current chunk (what finished is printed); a
        # second one ends the process at once.
        interrupted.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = run(args, bar, interrupted.is_set)
    except Refused as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()
    if args.csv:
        args.csv.write_text(result.to_csv())
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(sanity_table(result) if args.sanity else table(result))
    return EXIT_INTERRUPTED if interrupted.is_set() else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
