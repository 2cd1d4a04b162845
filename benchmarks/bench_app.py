"""App responsiveness, measured against the framework's own floor in the same run.

1. Slider change: median round trip of /analyze for every preset through gradio_client,
   against /ping (a trivial endpoint of the same app). Target: within +50 ms of the floor.
2. torchinfo summary of resnext101_64x4d through /summary. Target: under 2 s.
3. Start-up: `python -m explorer` until the first HTTP 200, against a bare Gradio app
   started the same way (wall time, and the server's CPU time: steadier on a shared machine).
   Target: under 1.15x.

    python -m benchmarks.bench_app [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import resnext

ROOT = Path(__file__).resolve().parent.parent
BARE_APP = (
    "import gradio as gr\n"
    "with gr.Blocks() as demo:\n"
    "    gr.Markdown('bare')\n"
    "demo.launch(server_name='127.0.0.1', server_port={port})\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def time_to_first_200(command: list[str], port: int, timeout: float = 120.0) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the server process) from launch to its first HTTP 200.

    CPU time is the steadier figure on a shared machine: other processes stretch the wall
    clock, not the work the server itself does to start.
    """
    import psutil

    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            while time.perf_counter() - start < timeout:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                        if response.status == 200:
                            wall = time.perf_counter() - start
                            cpu = psutil.Process(process.pid).cpu_times()
                            return wall, cpu.user + cpu.system
                except OSError:
                    if process.poll() is not None:  # it died: say why instead of waiting
                        errors.seek(0)
                        raise RuntimeError(f"{command} exited with {process.returncode}:\n"
                                           + errors.read().decode(errors="replace")[-3000:])
                    time.sleep(0.05)
            errors.seek(0)
            raise TimeoutError(f"{command} did not answer within {timeout} s; its stderr ends:\n"
                               + errors.read().decode(errors="replace")[-3000:])
        finally:
            process.terminate()
            process.wait(timeout=30)


def startup(rounds: int) -> None:
    ours, bare = [], []
    for _ in range(rounds):  # interleaved, so machine noise hits both alike
        port = free_port()
        ours.append(time_to_first_200([sys.executable, "-m", "explorer", "--port", str(port)], port))
        port = free_port()
        bare.append(time_to_first_200([sys.executable, "-c", BARE_APP.format(port=port)], port))
    for index, what in ((0, "wall time"), (1, "CPU time")):
        o = statistics.median(sample[index] for sample in ours)
        b = statistics.median(sample[index] for sample in bare)
        print(f"start-up to first HTTP 200, {what} (median of {rounds}): explorer {o:.2f} s, "
              f"bare Gradio {b:.2f} s -> {o / b:.2f}x (target < 1.15x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--startup-rounds", type=int, default=5)
    parser.add_argument("--startup-only", action="store_true", help="measure start-up only")
    args = parser.parse_args()
    if args.startup_only:
        startup(args.startup_rounds)
        return

    from gradio_client import Client

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "explorer", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        floor = median_ms(lambda: client.predict(api_name="/ping"), args.repeats)
        print(f"/ping floor (median of {args.repeats}): {floor:.1f} ms\n")
        print(f"{'preset':<20} {'/analyze ms':>12} {'over floor':>11}")
        worst = 0.0
        for name, cfg in resnext.PRESETS.items():
            # /apply_preset gives /analyze's config values, base width last (after baseline).
            *values, base = client.predict(name, api_name="/apply_preset")
            took = median_ms(lambda: client.predict(*values, "resnet50", base,
                                                    api_name="/analyze"), args.repeats)
            worst = max(worst, took - floor)
            print(f"{name:<20} {took:12.1f} {took - floor:+10.1f}")
        print(f"\nworst slider change over the floor: {worst:+.1f} ms (target <= +50 ms)")

        *values, base = client.predict("resnext101_64x4d", api_name="/apply_preset")
        summary_ms = median_ms(lambda: client.predict(*values, 3, base, api_name="/summary"), 5)
        print(f"torchinfo summary of resnext101_64x4d via /summary: {summary_ms / 1e3:.2f} s "
              f"(target < 2 s; {summary_ms / floor:.0f}x the floor)")
    finally:
        server.terminate()
        server.wait(timeout=30)
    startup(args.startup_rounds)


if __name__ == "__main__":
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    main()
