"""`python -m explorer`: serve the ResNeXt Explorer on http://127.0.0.1:7860;
`python -m explorer users ...` manages the accounts of an auth file (`explorer.accounts`)."""

from __future__ import annotations

import argparse
import ctypes
import gc
import ipaddress
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

# glibc's mallopt parameter number for the arena cap (malloc.h: M_ARENA_MAX = -8).
_M_ARENA_MAX = -8


def limit_malloc_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas before any worker thread starts.

    Each of Gradio's worker threads that runs torch code gets its own malloc arena by
    default (up to 8 per core), and their fragmentation grew the server's memory by
    ~170 MB over 100 attributions in a measurement; with 2 arenas it grew ~25 MB. Same as
    MALLOC_ARENA_MAX=2. A no-op where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False


@contextmanager
def collector_paused_for_start_up() -> Iterator[None]:
    """Run the block (importing Gradio and building the app) without cyclic garbage collection.

    Importing Gradio and building the Blocks create hundreds of thousands of objects that live
    as long as the server, and Python's collector re-scans them again and again as they pile
    up: ~0.4 s of CPU here, a seventh of the start-up (benchmarks/bench_app.py). Afterwards
    one collection frees what cyclic garbage there is, and `gc.freeze()` moves the survivors
    (modules, the app) out of future collections, which keeps later pauses short as well.
    Reference counting frees everything else as usual throughout.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        gc.enable()


def one_event_at_a_time(demo: Any) -> None:
    """Each event listener runs one call at a time unless it sets its own concurrency limit.

    That is Gradio's default already (the queue that `gr.Blocks()` creates resolves "not set"
    to 1), unless the GRADIO_DEFAULT_CONCURRENCY_LIMIT environment variable says otherwise;
    only then is `demo.queue(...)` called, because it rebuilds the whole FastAPI app, which
    `launch()` builds again anyway: ~45 ms of CPU, a tenth of the app's start-up cost over a
    bare Gradio app (benchmarks/bench_app.py).
    """
    if os.environ.get("GRADIO_DEFAULT_CONCURRENCY_LIMIT") is not None:
        demo.queue(default_concurrency_limit=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m explorer",
        description="Interactive explorer of the ResNeXt architecture family (Gradio web app).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only). "
                             "0.0.0.0 serves every network interface: anyone who can reach "
                             "this machine can use the app.")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--share", action="store_true",
                        help="also open a public *.gradio.live link through Gradio's share "
                             "servers (off unless given: anyone with the link can use the app)")
    parser.add_argument("--device", default="cpu",
                        help="default device for forward passes and attributions: cpu, cuda, "
                             "cuda:N or mps (default cpu)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="where training runs are kept, one folder each (default ./runs)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="where CIFAR archives and image folders are looked for; the Train "
                             "tab offers folders from inside it only (default ./data)")
    parser.add_argument("--study-storage", default=None, metavar="URL",
                        help="where the Study tab's studies live: an SQLAlchemy URL, e.g. "
                             "postgresql://user@host/db shared by workers on other machines "
                             "(default: resnext.study's, a file in the runs directory)")
    _add_sharing_flags(parser)
    return parser.parse_args(argv)


def _add_sharing_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for a server several people share (README: "Running it for several people")."""
    from .train.jobs import QueueLimits

    limits = QueueLimits()
    parser.add_argument("--auth-file", type=Path, default=None,
                        help="accounts file: everyone signs in (page and API); manage it with "
                             "`python -m explorer users add NAME --auth-file FILE`")
    parser.add_argument("--admin", action="append", default=[], metavar="NAME",
                        help="a user (of --auth-file) who may stop and delete every run; "
                             "repeat for several")
    parser.add_argument("--max-runs-per-user", type=int, default=limits.per_user,
                        help="trainings one user may have queued or running at once "
                             f"(default {limits.per_user})")
    parser.add_argument("--max-queue-per-device", type=int, default=limits.per_device,
                        help="trainings queued or running per device, all users together "
                             f"(default {limits.per_device})")


def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def open_access_warning(host: str, port: int, share: bool) -> str | None:
    """What to tell the person starting a server others can reach without accounts."""
    reach = []
    if not is_loopback(host):
        reach.append(f"who can reach this machine on port {port}")
    if share:
        reach.append("who has the public gradio.live link")
    if not reach:
        return None
    return (f"warning: no --auth-file: anyone {' and anyone '.join(reach)} can use this app "
            f"without signing in: train on it, and stop and delete every run. Add accounts "
            f"with `python -m explorer users add NAME --auth-file FILE` and start with "
            f"--auth-file FILE.")


def sharing_options(args: argparse.Namespace) -> dict[str, Any]:
    """AppOptions' accounts, admins and queue limits from the flags (a ValueError says which
    flag is wrong)."""
    from .accounts import Accounts
    from .train.jobs import QueueLimits

    limits = QueueLimits(args.max_runs_per_user, args.max_queue_per_device)
    if args.auth_file is None:
        if args.admin:
            raise ValueError("--admin needs --auth-file (without accounts there is one user, "
                             "who may manage every run)")
        return {"queue_limits": limits}
    accounts = Accounts(args.auth_file)
    unknown = [name for name in args.admin if not accounts.has(name)]
    if unknown:
        raise ValueError(f"--admin {', '.join(unknown)}: no such user in {args.auth_file}")
    return {"accounts": accounts, "admins": tuple(args.admin), "queue_limits": limits}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["users"]:
        from .accounts import users_main

        return users_main(argv[1:])
    args = parse_args(argv)
    try:
        sharing = sharing_options(args)
    except ValueError as error:
        print(f"python -m explorer: {error}", file=sys.stderr)
        return 2
    warning = None if "accounts" in sharing else open_access_warning(args.host, args.port,
                                                                    args.share)
    if warning:
        print(f"python -m explorer: {warning}", file=sys.stderr)
    limit_malloc_arenas()
    if args.device != "cpu":
        # Checked now (this imports torch) so a wrong --device is a clear message at start,
        # not a surprise on the first run.
        from .shared.devices import resolve_device

        try:
            args.device = resolve_device(args.device).key
        except ValueError as error:
            print(f"python -m explorer: --device: {error}", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with collector_paused_for_start_up():
        from .app import create_app, launch_options
        from .context import AppOptions

        options = AppOptions(default_device=args.device, runs_dir=args.runs_dir,
                             data_dir=args.data_dir, study_storage=args.study_storage,
                             **sharing)
        demo = create_app(options)
        one_event_at_a_time(demo)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                **launch_options(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
