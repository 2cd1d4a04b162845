"""Many users at once (issue 7): 8 gradio_client sessions against one server, loopback only.

The default test command runs a short version (~12 s); `python -m pytest tests/test_load.py
--full -s` runs the full ~60 s one and prints the figures. Bounded in time and in requests.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import resnext

SMALL = resnext.ResNeXtConfig(cardinality=8, bottleneck_width=4, stage_blocks=(1, 1, 1),
                              num_classes=10, stem="cifar")
SALIENCY = ["saliency", "predicted class", 8, "black", 4, 4, 0.15, "saliency", 8, 8, "",
            "cpu", "positive", "inferno", 0.6]
MAX_REQUESTS_PER_CLIENT = 2_000


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    refused_as_expected: int = 0
    expensive_running: int = 0
    cheap_while_busy: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, seconds: float, busy: bool) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)
            if kind == "analyze" and busy:
                self.cheap_while_busy.append(seconds)


IDLE_VALUES = [32, 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False, "resnet50"]


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _slider_user(client: Client, tally: Tally, deadline: float, rng: random.Random) -> None:
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() > deadline:
            return
        values = [rng.choice([1, 2, 4, 8, 16, 32, 64]), rng.choice([4, 8, 14, 24, 40, 64]),
                  rng.choice(["3, 4, 6, 3", "3, 4, 23, 3", "2, 2, 2, 2", "3, 3, 3"]),
                  rng.choice(["imagenet", "cifar"]), "c", False, 1000, rng.choice([32, 224]),
                  rng.random() < 0.3, "resnet50"]
        deliberate = rng.random() < 0.1
        if deliberate:
            values[2] = "3, 0, 6"  # a bad stage layout: must be refused, clearly
        busy = tally.expensive_running > 0
        start = time.perf_counter()
        try:
            client.predict(*values, api_name="/analyze")
            if deliberate:
                tally.errors.append("a bad layout was accepted")
        except AppError as error:
            if not deliberate:
                tally.errors.append(f"analyze: {error}")
            else:
                with tally.lock:
                    tally.refused_as_expected += 1
            continue
        tally.record("analyze", time.perf_counter() - start, busy)


def _expensive_user(kind: str, client: Client, tally: Tally, deadline: float, sample: str) -> None:
    config = json.dumps({**SMALL.to_dict(), "image_size": 64})
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() > deadline:
            return
        with tally.lock:
            tally.expensive_running += 1
        start = time.perf_counter()
        try:
            if kind == "run":
                client.predict(config, None, "cpu", 4, "float32", False, 1, 3, "random",
                               api_name="/run")
            else:
                client.predict(handle_file(sample), *SALIENCY, api_name="/attribute")
            tally.record(kind, time.perf_counter() - start, False)
        except Exception as error:  # noqa: BLE001 - every failure is a finding
            tally.errors.append(f"{kind}: {type(error).__name__}: {error}")
        finally:
            with tally.lock:
                tally.expensive_running -= 1


@pytest.fixture(scope="module")
def server():
    """`python -m explorer` in its own process, so its memory is measured alone."""
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from conftest import _free_port

    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "explorer", "--port", str(port)],
                               cwd=Path(__file__).resolve().parent.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.2)
    yield url, psutil.Process(process.pid)
    process.terminate()
    process.wait(timeout=30)


def test_eight_users_at_once(server, full_run, capsys):
    from explorer.services.images import sample_images

    app_url, server_process = server
    seconds = 60 if full_run else 12
    sample = str(sample_images()[0])
    clients = [Client(app_url, verbose=False) for _ in range(8)]
    for client in clients[6:]:  # the attribution users pick the small network
        client.predict(8, 4, "1, 1, 1", "cifar", "c", False, 10, 64, False, "resnet50",
                       api_name="/analyze")
    # Warm-up: one request of each kind, so "start" memory includes torch's own arenas and
    # the one small model, and growth after it is what the load adds.
    warm = Tally()
    _expensive_user("run", clients[5], warm, time.monotonic() + 0.001, sample)
    _expensive_user("attribute", clients[6], warm, time.monotonic() + 0.001, sample)
    idle = [_timed(lambda: clients[0].predict(*IDLE_VALUES, api_name="/analyze"))
            for _ in range(10)]
    assert warm.errors == [], warm.errors
    rss_start = server_process.memory_info().rss
    tally = Tally()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=_slider_user,
                                args=(c, tally, deadline, random.Random(i)))
               for i, c in enumerate(clients[:5])]
    threads.append(threading.Thread(target=_expensive_user,
                                    args=("run", clients[5], tally, deadline, sample)))
    threads += [threading.Thread(target=_expensive_user,
                                 args=("attribute", c, tally, deadline, sample))
                for c in clients[6:]]
    timeline = []  # (seconds since start, server RSS in MB), sampled while the load runs
    started = time.monotonic()
    for thread in threads:
        thread.start()
    settled_rss = None
    while any(t.is_alive() for t in threads) and time.monotonic() - started < seconds + 120:
        now = time.monotonic() - started
        rss = server_process.memory_info().rss
        timeline.append((round(now), round(rss / 2**20)))
        if settled_rss is None and now >= seconds / 3:
            # The first third also warms up: the allocator's arenas and caches fill as all
            # eight users hit the server at once. Growth after it would be a leak.
            settled_rss = rss
        time.sleep(1)
    for thread in threads:
        thread.join(timeout=5)
    elapsed = time.monotonic() - started
    rss_end = server_process.memory_info().rss

    assert not any(t.is_alive() for t in threads), "a client hung"
    assert tally.errors == [], tally.errors[:5]
    cheap = tally.latencies.get("analyze", [])
    served = sum(len(v) for v in tally.latencies.values()) + tally.refused_as_expected
    figures = {
        "seconds": round(elapsed, 1),
        "requests_served": served,
        "by_endpoint": {k: len(v) for k, v in tally.latencies.items()},
        "deliberate_bad_inputs_refused": tally.refused_as_expected,
        "errors": len(tally.errors),
        "analyze_idle_p50_ms": round(1e3 * statistics.median(idle), 1),
        "analyze_p50_ms": round(1e3 * statistics.median(cheap), 1),
        "analyze_p95_ms": round(1e3 * _percentile(cheap, 0.95), 1),
        "analyze_while_expensive_running_p50_ms":
            round(1e3 * statistics.median(tally.cheap_while_busy), 1) if tally.cheap_while_busy else None,
        "analyze_while_expensive_running_p95_ms":
            round(1e3 * _percentile(tally.cheap_while_busy, 0.95), 1) if tally.cheap_while_busy else None,
        "server_rss_before_load_mb": round(rss_start / 2**20),
        "server_rss_after_first_third_mb": round(settled_rss / 2**20),
        "server_rss_end_mb": round(rss_end / 2**20),
        "server_rss_timeline_mb": timeline,
    }
    with capsys.disabled():
        print("\nload test:", json.dumps(figures))
    if os.environ.get("LOAD_TEST_REPORT"):
        Path(os.environ["LOAD_TEST_REPORT"]).write_text(json.dumps(figures, indent=1))
    assert tally.latencies.get("run") and tally.latencies.get("attribute")
    assert len(cheap) >= 20
    # Cheap requests are never queued behind runs and attributions: seconds, not minutes.
    assert figures["analyze_while_expensive_running_p95_ms"] < 5_000
    # Memory: the load uses one small model (cached since the warm-up) and bounded caches,
    # so once warm the server must not keep growing (allocator noise aside).
    assert rss_end - settled_rss < 100 * 2**20
