"""`python -m resnext.study`: create a study, work on it (any number of workers, anywhere the
storage reaches), show it.

    python -m resnext.study create table2 --knob cardinality --values 1,2,4,8,32 \\
        --keep-complexity --seeds 0,1,2 --data shapes --epochs 5
    python -m resnext.study work table2 [--device cuda:0]      # until no trial waits
    python -m resnext.study show table2 [--json | --csv]
    python -m resnext.study list                                 # the studies in the storage
    python -m resnext.study search front --budget-macs 20000000 --trials 16 --data shapes

Exit status: 0 done (or stopped: SIGINT/SIGTERM queue the running trial again), 1 when a
trial this worker ran failed, 2 for bad arguments, an unknown study or unusable storage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the study's name")
    p.add_argument("--storage", help="an SQLAlchemy URL, e.g. postgresql://user@host/db "
                                     "(default: sqlite in the runs directory)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help="where the trials' run folders go (default ./runs)")


def _spec_options(p: argparse.ArgumentParser) -> None:
    from ..data.registry import argument_forms
    from ..presets import PRESETS
    from .spec import DEFAULT_GRACE, DEFAULT_HEARTBEAT, DEFAULT_METHODS, DEFAULT_N_IMAGES

    _storage_options(p)
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=sorted(PRESETS), help="the base network")
    model.add_argument("--config", help="the base network as JSON (or @file.json); "
                                        "num_classes is set from the data when omitted")
    p.add_argument("--data", default="shapes",
                   help=" | ".join(argument_forms()) + " (resnext.data's registry)")
    p.add_argument("--data-root", help="cifar10/cifar100: the folder holding the archive")
    p.add_argument("--data-seed", type=int, default=0,
                   help="the seed of the generated data, the same for every trial")
    p.add_argument("--train-size", type=int)
    p.add_argument("--test-size", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--recipe", default="quick")
    p.add_argument("--lr", type=float)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="attribution methods to score ('' for accuracy alone)")
    p.add_argument("--n-images", type=int, default=DEFAULT_N_IMAGES,
                   help="test images each method is scored on")
    p.add_argument("--heartbeat", type=int, default=DEFAULT_HEARTBEAT,
                   help="seconds between a running trial's heartbeats")
    p.add_argument("--grace", type=int, default=DEFAULT_GRACE,
                   help="seconds without a heartbeat after which a trial is retried")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and the time estimate; create nothing")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m resnext.study",
                                description="Sweep one ResNeXt knob over seeds; report "
                                            "accuracy and attribution quality with 95 % "
                                            "intervals.")
    commands = p.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a grid study and queue its trials")
    _spec_options(create)
    create.add_argument("--knob", required=True,
                        help="cardinality | bottleneck_width | depth | blocks | base_planes "
                             "| block_form")
    create.add_argument("--values", required=True,
                        help="e.g. 1,2,4,8,32 (blocks: 1,1,1;2,2,2)")
    create.add_argument("--keep-complexity", action="store_true",
                        help="cardinality: set d for each C to keep the base network's cost")
    create.add_argument("--seeds", default="0,1,2")
    search = commands.add_parser("search", help="create an NSGA-II search over C, d and "
                                                "blocks within a MAC budget")
    _spec_options(search)
    search.add_argument("--budget-macs", type=int, required=True)
    search.add_argument("--trials", type=int, required=True)
    search.add_argument("--cardinalities", default="1,2,4,8,16,32")
    search.add_argument("--blocks", default="", help="layouts to try, e.g. 1,1,1;2,2,2 "
                                                     "(default: the base network's)")
    search.add_argument("--objective", default="gradcam:energy", help="method:metric")
    search.add_argument("--population", type=int, default=0)
    search.add_argument("--seeds", default="0", help="the seed every search trial uses")
    work = commands.add_parser("work", help="train waiting trials until none waits")
    _storage_options(work)
    work.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    work.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    work.add_argument("--max-trials", type=int, help="stop after this many trials")
    work.add_argument("--no-wait", action="store_true",
                      help="stop when none waits, even while others' trials run")
    listing = commands.add_parser("list", help="the studies in a storage")
    listing.add_argument("--storage")
    listing.add_argument("--runs-dir", type=Path, default=Path("runs"))
    show = commands.add_parser("show", help="the study's points and trials (live)")
    _storage_options(show)
    formats = show.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true")
    formats.add_argument("--csv", action="store_true")
    return p


def _numbers(flag: str, text: str) -> tuple[int, ...]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items):
        raise ValueError(f"{flag} must be whole numbers separated by commas, got {text!r}")
    return tuple(int(item) for item in items)


def base_config(args: argparse.Namespace, num_classes: int):
    from ..config import ResNeXtConfig
    from ..presets import PRESETS

    if args.preset:
        return PRESETS[args.preset].replace(num_classes=num_classes)
    if args.config:
        text = Path(args.config[1:]).read_text() if args.config.startswith("@") else args.config
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config is not valid JSON: {error.msg} (column {error.colno})")
        if not isinstance(values, dict):
            raise ValueError("--config must be a JSON object such as {\"cardinality\": 4}")
        values.setdefault("num_classes", num_classes)
        return ResNeXtConfig.from_dict(values)
    # The small network resnext.train's CLI trains by default (minutes on a CPU).
    return ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16,
                         stage_blocks=(1, 1, 1), stem="cifar", num_classes=num_classes)


def build_spec(args: argparse.Namespace):
    from .. import data as datasets
    from .spec import SearchSpec, StudySpec, data_spec

    data = data_spec(args.data, train_size=args.train_size, test_size=args.test_size,
                     image_size=args.image_size, seed=args.data_seed, root=args.data_root)
    try:
        classes = len(datasets.from_spec(data).classes)
    except (OSError, datasets.DatasetUnavailableError) as error:
        raise ValueError(f"--data: {error}") from None
    common = dict(name=args.name, base=base_config(args, classes),
                  seeds=_numbers("--seeds", args.seeds), data=data, epochs=args.epochs,
                  batch_size=args.batch_size, recipe=args.recipe, lr=args.lr,
                  methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                  n_images=args.n_images, heartbeat=args.heartbeat, grace=args.grace)
    if args.command == "search":
        search = SearchSpec(budget_macs=args.budget_macs, trials=args.trials,
                            cardinalities=_numbers("--cardinalities", args.cardinalities),
                            blocks=tuple(b for b in args.blocks.split(";") if b.strip()),
                            objective=args.objective, population=args.population)
        return StudySpec(search=search, **common)
    return StudySpec(knob=args.knob, values=args.values, keep_complexity=args.keep_complexity,
                     **common)


def _print_plan(planned: dict[str, Any]) -> None:
    if planned["mode"] == "grid":
        for point in planned["points"]:
            print(f"  {point['value']}: {point['name']}, {point['macs']:,} MACs "
                  f"({point['macs_ratio']:.3f} x base), {point['params']:,} params "
                  f"({point['params_ratio']:.3f} x base)")
    else:
        for pair in planned["space"]:
            print(f"  C={pair['cardinality']} blocks {pair['blocks']}: d in "
                  f"[{pair['d_min']}, {pair['d_max']}]")
    for note in planned["notes"]:
        print(f"  note: {note}")


def create_command(args: argparse.Namespace) -> int:
    from .estimation import estimate
    from .planning import create, plan

    spec = build_spec(args)
    if args.dry_run:
        planned = plan(spec)
        print(f"study {spec.name}: {planned['trials']} trials")
        _print_plan(planned)
        print(estimate(spec)["phrase"] + " on this machine")
        return EXIT_OK
    made = create(spec, args.storage, args.runs_dir)
    print(f"study {made['name']}: {made['trials']} trials queued in {made['storage']}")
    _print_plan(made["plan"])
    storage = f" --storage {made['storage']}" if args.storage else ""
    print(f"start workers with: python -m resnext.study work {spec.name}{storage} "
          f"--runs-dir {args.runs_dir}")
    return EXIT_OK


class StopFlag:
    """The first SIGINT/SIGTERM asks the worker to stop (its trial is queued again); a
    second one interrupts at once (the trial goes stale and is retried after its grace)."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"{signal.Signals(signum).name}: stopping after this step; the running trial "
              f"goes back to the queue (again to stop at once)", file=sys.stderr, flush=True)

    def __call__(self) -> bool:
        return self.requested


def _say(event: dict[str, Any]) -> None:
    kind = event["kind"]
    if kind == "start":
        from .reporting import params_text

        line = (f"trial {event['trial']} ({params_text(event['params'])}): training into "
                f"{event['run_id']}")
    elif kind == "complete":
        line = (f"trial {event['trial']}: test accuracy {100 * event['accuracy']:.1f} % "
                f"({event['seconds']:.0f} s)")
    elif kind == "failed":
        line = f"trial {event['trial']} failed: {event['error']}"
    elif kind == "lost":
        line = (f"trial {event['trial']}: finished after another worker took it for dead; "
                f"its retry counts instead")
    elif kind == "pruned":
        line = f"trial {event['trial']} pruned: {event['reason']}"
    elif kind == "copied":
        line = f"trial {event['trial']}: the network of trial {event['same_as']}, not trained again"
    elif kind == "waiting":
        line = f"no trial waits; waiting for {event['running']} running trial(s) to end"
    else:
        line = f"{kind}: {event}"
    print(line, flush=True)


def work_command(args: argparse.Namespace) -> int:
    from .worker import work

    if args.threads is not None:
        if not 1 <= args.threads <= 1024:
            raise ValueError(f"--threads must be in [1, 1024], got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    stop = StopFlag()
    stop.install()
    done = work(args.name, args.storage, args.runs_dir, args.device, should_stop=stop,
                on_event=_say, max_trials=args.max_trials, wait=not args.no_wait)
    outcomes = ", ".join(f"{n} {kind}" for kind, n in sorted(done["outcomes"].items()))
    print(f"worker done: {outcomes or 'no trial taken'}")
    return EXIT_FAILED if done["outcomes"].get("failed") else EXIT_OK


def show_command(args: argparse.Namespace) -> int:
    from .reporting import report, to_csv, to_text

    result = report(args.name, args.storage, args.runs_dir)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(to_csv(result) if args.csv else to_text(result))
    return EXIT_OK


def list_command(args: argparse.Namespace) -> int:
    from .reporting import studies

    for listed in studies(args.storage, args.runs_dir):
        counts = ", ".join(f"{n} {state}" for state, n in listed["counts"].items() if n)
        print(f"{listed['name']}  {listed['mode'] or 'not a resnext study'}  "
              f"{listed['trials']} trials: {counts or 'none'}  (created {listed['created']})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    command = {"create": create_command, "search": create_command, "work": work_command,
               "show": show_command, "list": list_command}[args.command]
    try:
        return command(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
