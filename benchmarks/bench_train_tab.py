"""Does the app stay quick while a training runs? /analyze round trips idle, then while the
Train tab's training process (niced, in its own process) runs on the same CPU.

Both medians are taken in one run against the same server; the ratio is what counts (the
machine is shared). Target: /analyze during training within 1.5x of idle.

    python -m benchmarks.bench_train_tab [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

# A network big enough that its training keeps both cores busy for the whole measurement.
TRAINED = {"cardinality": 8, "bottleneck_width": 8, "base_planes": 32, "stage_blocks": [1, 1, 1],
           "stem": "cifar", "image_size": 32}
ANALYZE_ARGS = (32, 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False, "resnet50")


def analyze_ms(client, repeats: int) -> list[float]:
    client.predict(*ANALYZE_ARGS, api_name="/analyze")  # warm
    samples = []
    for index in range(repeats):
        args = list(ANALYZE_ARGS)
        args[0] = 16 + index % 32  # a different config each time: no cached report
        start = time.perf_counter()
        client.predict(*args, api_name="/analyze")
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    from gradio_client import Client

    from benchmarks.bench_app import free_port
    from explorer.app import create_app, launch_options
    from explorer.context import AppOptions

    root = Path(tempfile.mkdtemp(prefix="bench-train-tab-"))
    demo = create_app(AppOptions(runs_dir=root / "runs", data_dir=root / "data"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options())
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    idle = analyze_ms(client, args.repeats)
    run = client.predict(json.dumps(TRAINED), "shapes", 32, 20000, 500, 5, 64, "quick", None,
                         0, "cpu", api_name="/train_start")["run_id"]
    while client.predict(run, api_name="/train_status")["progress"] is None:
        time.sleep(0.5)  # until it is really training (past importing torch and the data)
    busy = analyze_ms(client, args.repeats)
    state = client.predict(run, api_name="/train_status")["run"]["state"]
    client.predict(run, api_name="/train_stop")
    demo.close()
    idle_p50, busy_p50 = statistics.median(idle), statistics.median(busy)
    print(f"/analyze median, idle:            {idle_p50:7.1f} ms (p90 "
          f"{statistics.quantiles(idle, n=10)[-1]:.1f})")
    print(f"/analyze median, while training:  {busy_p50:7.1f} ms (p90 "
          f"{statistics.quantiles(busy, n=10)[-1]:.1f}); the run was {state} throughout")
    print(f"ratio during/idle: {busy_p50 / idle_p50:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
