"""Runs that belong to someone (issue 20), through a real server on loopback with accounts and
`gradio_client` signed in as each user: no credentials, no entry; only a run's owner or an
admin stops or deletes it; the queue bounds refuse with the limit named and queue nothing;
deleting removes exactly one folder; a run id that is a path is refused everywhere; several
users at once keep the bounds; a queued run survives a restart of the server and trains.

No test trains more than one tiny epoch: a device is kept busy by a long run whose process
is paused (SIGSTOP) as soon as it starts, and resumed only to be stopped.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from explorer import accounts
from resnext.train import runs

ROOT = Path(__file__).resolve().parent.parent
TINY = json.dumps({"cardinality": 2, "bottleneck_width": 16, "base_planes": 8,
                   "stage_blocks": [1, 1], "stem": "cifar", "image_size": 16})
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}
ADMIN = "carol"
PER_USER, PER_DEVICE = 2, 4
BAD_IDS = ["../x", "/etc", "a/b", ".", "..", "../../etc/passwd"]


def train_args(epochs: int = 1, seed: int = 0) -> list:
    """/train_start's arguments: the tiny network, 256 shapes images of 16 px."""
    return [TINY, "shapes", 16, 256, 64, epochs, 64, "quick", None, seed, "cpu"]


def write_auth_file(path: Path) -> Path:
    accounts.write_users(path, {name: accounts.hash_password(pw) for name, pw in PASSWORDS.items()})
    return path


def hold(runs_dir: Path, run_id: str, timeout: float = 60) -> int:
    """Pause the training process of `run_id` as soon as it has one; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = runs.read_status(runs_dir / run_id)
        if status.get("state") == "running" and isinstance(status.get("pid"), int):
            os.killpg(status["pid"], signal.SIGSTOP)
            return status["pid"]
        time.sleep(0.05)
    raise AssertionError(f"{run_id} did not start: {runs.read_status(runs_dir / run_id)}")


def release(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def wait_state(client: Client, run_id: str, states: tuple[str, ...], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(run_id, api_name="/train_status")
        if status["run"]["state"] in states:
            return status
        time.sleep(0.3)
    raise AssertionError(f"{run_id} did not reach {states}: {status['run']}")


def folders(runs_dir: Path) -> dict[str, list[str]]:
    """Every folder of the runs directory and its files: what 'nothing changed' compares."""
    if not runs_dir.is_dir():
        return {}
    return {p.name: sorted(f.name for f in p.iterdir()) for p in sorted(runs_dir.iterdir())}


def refused(call, *args, api_name: str) -> str:
    with pytest.raises(AppError) as info:
        call(*args, api_name=api_name)
    assert "Traceback" not in str(info.value)
    return str(info.value)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The app with accounts (alice, bob, dave; carol the admin) and small queue bounds."""
    from conftest import _free_port
    from explorer.app import create_app, launch_options
    from explorer.context import AppOptions
    from explorer.train.jobs import QueueLimits

    root = tmp_path_factory.mktemp("lab")
    options = AppOptions(runs_dir=root / "runs", data_dir=root / "data",
                         accounts=accounts.Accounts(write_auth_file(root / "users.json")),
                         admins=(ADMIN,), queue_limits=QueueLimits(PER_USER, PER_DEVICE))
    demo = create_app(options)
    demo.queue(default_concurrency_limit=1)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                quiet=True, **launch_options(options))
    url = f"http://127.0.0.1:{port}/"
    clients = {name: Client(url, auth=(name, pw), verbose=False) for name, pw in PASSWORDS.items()}
    yield type("Lab", (), {"url": url, "runs_dir": options.runs_dir, "root": root,
                           "clients": clients})
    demo.close()


@pytest.fixture
def busy_cpu(lab):
    """cpu kept busy by alice's long run, paused; afterwards every run is stopped."""
    alice = lab.clients["alice"]
    run_id = alice.predict(*train_args(epochs=10_000), api_name="/train_start")["run_id"]
    pid = hold(lab.runs_dir, run_id)
    yield run_id, pid
    admin = lab.clients[ADMIN]
    for record in admin.predict(api_name="/runs"):
        if record["state"] in ("queued", "running"):
            admin.predict(record["run_id"], api_name="/train_stop")
    if runs.pid_alive(pid):  # not listed as running (a failed test): stopped here
        os.killpg(pid, signal.SIGTERM)
    release(pid)
    wait_state(admin, run_id, ("stopped", "failed", "interrupted"), timeout=60)


# Signing in ---------------------------------------------------------------------------------

def test_without_credentials_nothing_is_served_or_queued(lab):
    before = folders(lab.runs_dir)
    with pytest.raises(Exception, match="credentials were not provided"):
        Client(lab.url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(lab.url, auth=("alice", "not-her-password"), verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(lab.url, auth=("mallory", "alice-pw"), verbose=False)
    for route in ("gradio_api/call/train_start", "gradio_api/call/runs", "gradio_api/info"):
        body = json.dumps({"data": train_args()}).encode()
        request = urllib.request.Request(lab.url + route, data=body if "call" in route else None,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 401, route
    assert folders(lab.runs_dir) == before


# Ownership, bounds, deleting ------------------------------------------------------------------------

def test_only_the_owner_or_an_admin_stops_or_deletes_a_run(lab, busy_cpu):
    alice, bob, carol = (lab.clients[name] for name in ("alice", "bob", "carol"))
    first, _ = busy_cpu
    queued = alice.predict(*train_args(seed=1), api_name="/train_start")
    second = queued["run_id"]
    assert queued["queue_position"] == 1
    listed = {r["run_id"]: r for r in bob.predict(api_name="/runs")}  # everyone sees every run
    assert (listed[first]["owner"], listed[first]["state"]) == ("alice", "running")
    assert (listed[second]["owner"], listed[second]["state"]) == ("alice", "queued")
    before = folders(lab.runs_dir)
    for run_id in (first, second):
        for endpoint, verb in (("/train_stop", "stop"), ("/delete_run", "delete")):
            message = refused(bob.predict, run_id, api_name=endpoint)
            assert f"{run_id} belongs to alice: only its owner or an admin can {verb} it" in message
    assert folders(lab.runs_dir) == before  # a refusal changes nothing
    assert bob.predict(second, api_name="/train_status")["queue_position"] == 1
    assert bob.predict(first, api_name="/train_status")["run"]["state"] == "running"
    assert "is running: stop it first" in refused(alice.predict, first, api_name="/delete_run")
    # Alice removes her queued run; the admin could have too.
    assert alice.predict(second, api_name="/train_stop").startswith(f"Removed {second}")
    assert second not in folders(lab.runs_dir)
    bobs = bob.predict(*train_args(seed=2), api_name="/train_start")["run_id"]
    assert carol.predict(bobs, api_name="/train_stop").startswith(f"Removed {bobs}")
    assert alice.predict(first, api_name="/train_stop").startswith(f"Stopping {first}")


def test_a_user_over_the_limit_is_refused_with_it_and_nothing_is_queued(lab, busy_cpu):
    alice, bob, dave = (lab.clients[name] for name in ("alice", "bob", "dave"))
    first, _ = busy_cpu
    second = alice.predict(*train_args(seed=1), api_name="/train_start")["run_id"]
    before = folders(lab.runs_dir)
    message = refused(alice.predict, *train_args(seed=2), api_name="/train_start")
    assert (f"alice already has 2 trainings queued or running, the most one user may have at "
            f"once ({PER_USER}, the server's --max-runs-per-user)") in message
    assert f"{first} (running on cpu)" in message and f"{second} (queued, number 1 on cpu)" in message
    assert folders(lab.runs_dir) == before
    # The device's bound: 4 queued or running on cpu, whoever they belong to.
    bob.predict(*train_args(seed=3), api_name="/train_start")
    dave_first = dave.predict(*train_args(seed=4), api_name="/train_start")["run_id"]
    before = folders(lab.runs_dir)
    message = refused(dave.predict, *train_args(seed=5), api_name="/train_start")
    assert (f"the queue of cpu is full: 4 trainings are queued or running there, the most one "
            f"device takes ({PER_DEVICE}, the server's --max-queue-per-device)") in message
    assert f"Yours: {dave_first} (queued, number 3 on cpu)" in message
    assert folders(lab.runs_dir) == before
    assert len([r for r in alice.predict(api_name="/runs") if r["state"] == "queued"]) == 3


def test_delete_removes_exactly_that_folder_by_its_owner_or_an_admin(lab):
    alice, bob, carol = (lab.clients[name] for name in ("alice", "bob", "carol"))
    run_id = alice.predict(*train_args(), api_name="/train_start")["run_id"]
    status = wait_state(alice, run_id, ("finished", "failed"))
    assert status["run"]["state"] == "finished", status
    legacy = lab.runs_dir / "20200101-000000-legacy"  # a run from before owners
    legacy.mkdir()
    runs.write_config(legacy, {"model": json.loads(TINY), "data": {"name": "shapes"},
                               "epochs": 1, "environment": {"device": "cpu"}})
    runs.write_status(legacy, runs.status_record("finished", "2020-01-01T00:00:00Z", 1, "cpu",
                                                 ended=True, pid=None))
    size = runs.folder_size(lab.runs_dir / run_id)
    listed = {r["run_id"]: r for r in bob.predict(api_name="/runs")}
    assert listed[run_id]["size_bytes"] == size > 10_000  # the weights are most of it
    assert listed["20200101-000000-legacy"]["owner"] is None
    before = folders(lab.runs_dir)
    assert "belongs to alice" in refused(bob.predict, run_id, api_name="/delete_run")
    assert "records no owner" in refused(alice.predict, legacy.name, api_name="/delete_run")
    assert folders(lab.runs_dir) == before
    from resnext.units import byte_size

    assert alice.predict(run_id, api_name="/delete_run") == f"Deleted {run_id} ({byte_size(size)})."
    after = folders(lab.runs_dir)
    assert after == {name: files for name, files in before.items() if name != run_id}
    assert carol.predict(legacy.name, api_name="/delete_run").startswith(f"Deleted {legacy.name}")
    assert not legacy.exists()
    assert "no run" in refused(alice.predict, run_id, api_name="/delete_run")


def test_a_path_is_never_a_run_id(lab, tmp_path):
    carol = lab.clients[ADMIN]
    before = folders(lab.runs_dir)
    for run_id in BAD_IDS:
        for endpoint, extra in (("/train_stop", []), ("/train_status", []),
                                ("/delete_run", []), ("/use_run", []),
                                ("/evaluate", [["saliency"], 8, "label"]),
                                ("/sanity_check", [["saliency"], 8])):
            message = refused(carol.predict, run_id, *extra, api_name=endpoint)
            assert "not a run id" in message, (endpoint, run_id, message)
    # A link inside the runs directory to a folder outside it: never followed to delete.
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (lab.runs_dir / "link-out").symlink_to(outside, target_is_directory=True)
    try:
        assert "is a link" in refused(carol.predict, "link-out", api_name="/delete_run")
        assert (outside / "config.json").read_text() == "{}"
    finally:
        (lab.runs_dir / "link-out").unlink()
    assert folders(lab.runs_dir) == before


# Several users at once --------------------------------------------------------------------------------

def _user_session(name: str, client: Client, deadline: float, tally: dict, rng: random.Random
                  ) -> None:
    """Start, list, follow and stop runs; try to stop others'. Every answer is checked."""
    mine: list[str] = []
    while time.monotonic() < deadline:
        action = rng.choice(["start", "start", "runs", "status", "stop_mine", "stop_other"])
        try:
            if action == "start":
                mine.append(client.predict(*train_args(seed=rng.randrange(1000)),
                                           api_name="/train_start")["run_id"])
            elif action == "runs":
                _check_bounds(client.predict(api_name="/runs"), tally)
            elif action == "status" and mine:
                state = client.predict(mine[-1], api_name="/train_status")["run"]["state"]
                assert state == "queued", state
            elif action == "stop_mine" and mine:
                assert client.predict(mine.pop(0), api_name="/train_stop").startswith("Removed")
            elif action == "stop_other":
                others = [r for r in client.predict(api_name="/runs")
                          if r["owner"] not in (name, None) and r["state"] == "queued"]
                if others:
                    answer = client.predict(others[0]["run_id"], api_name="/train_stop")
                    if name != ADMIN:  # the admin may; anyone else must have been refused
                        tally["errors"].append(f"{name} stopped {others[0]['owner']}'s run")
                    assert answer.startswith("Removed"), answer
                    tally["admin_stops"] += 1
            tally["answered"][name] += 1
        except AppError as error:
            text = str(error)
            kind = ("user limit" if "--max-runs-per-user" in text else "device limit"
                    if "--max-queue-per-device" in text else "not owner"
                    if "only its owner or an admin" in text else "no run"
                    if "no run" in text else None)
            if kind is None:
                tally["errors"].append(f"{name} {action}: {text}")
            else:
                tally["refused"][kind] = tally["refused"].get(kind, 0) + 1
                tally["answered"][name] += 1
        except Exception as error:  # noqa: BLE001 - every failure is a finding
            tally["errors"].append(f"{name} {action}: {type(error).__name__}: {error}")


def _check_bounds(listed: list[dict], tally: dict) -> None:
    active = [r for r in listed if r["state"] in ("queued", "running")]
    per_owner: dict[str, int] = {}
    for record in active:
        per_owner[record["owner"]] = per_owner.get(record["owner"], 0) + 1
    tally["max_per_user"] = max([tally["max_per_user"], *per_owner.values()])
    tally["max_on_device"] = max(tally["max_on_device"], len(active))


def test_several_signed_in_users_at_once_keep_the_bounds(lab, busy_cpu, full_run, capsys):
    seconds = 40 if full_run else 10
    names = ["alice", "bob", "carol", "dave"]
    tally = {"answered": {name: 0 for name in names}, "refused": {}, "errors": [],
             "max_per_user": 0, "max_on_device": 0, "admin_stops": 0}
    # Separate sessions from the fixture's, one per user and thread.
    clients = {name: Client(lab.url, auth=(name, PASSWORDS[name]), verbose=False)
               for name in names}
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=_user_session,
                                args=(name, clients[name], deadline, tally, random.Random(i)))
               for i, name in enumerate(names)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    _check_bounds(clients["carol"].predict(api_name="/runs"), tally)
    with capsys.disabled():
        print("\naccounts load:", json.dumps({"seconds": round(time.monotonic() - started, 1),
                                              **{k: v for k, v in tally.items()
                                                 if k != "errors"}}))
    assert tally["errors"] == [], tally["errors"][:5]
    assert all(count >= 5 for count in tally["answered"].values()), tally["answered"]
    assert tally["max_per_user"] <= PER_USER and tally["max_on_device"] <= PER_DEVICE
    assert tally["refused"].get("user limit", 0) + tally["refused"].get("device limit", 0) >= 1
    assert tally["refused"].get("not owner", 0) >= 1  # others tried to stop runs not theirs


# A restart ---------------------------------------------------------------------------------------------

def _serve(port: int, root: Path) -> subprocess.Popen:
    """`python -m explorer` with accounts on the lab's runs directory; up when it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "explorer", "--port", str(port), "--runs-dir", str(root / "runs"),
         "--data-dir", str(root / "data"), "--auth-file", str(root / "users.json")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login_check", timeout=2)
        except urllib.error.HTTPError:
            return process  # 401: up, and asking to sign in
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.3)
        else:
            return process


def _shut(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def test_queued_runs_survive_a_restart_in_order_and_then_train(tmp_path):
    from conftest import _free_port

    write_auth_file(tmp_path / "users.json")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    server = _serve(port, tmp_path)
    held = None
    try:
        alice = Client(url, auth=("alice", PASSWORDS["alice"]), verbose=False)
        blocker = alice.predict(*train_args(epochs=10_000), api_name="/train_start")["run_id"]
        held = hold(tmp_path / "runs", blocker)
        first = alice.predict(*train_args(seed=1), api_name="/train_start")["run_id"]
        bob = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
        second = bob.predict(*train_args(seed=2), api_name="/train_start")["run_id"]
        _shut(server)  # the training process lives on in its own session
        server = _serve(port, tmp_path)
        alice = Client(url, auth=("alice", PASSWORDS["alice"]), verbose=False)
        assert alice.predict(blocker, api_name="/train_status")["run"]["state"] == "running"
        for run_id, position, owner in ((first, 1, "alice"), (second, 2, "bob")):
            status = alice.predict(run_id, api_name="/train_status")
            assert (status["run"]["state"], status["queue_position"], status["run"]["owner"]) \
                == ("queued", position, owner)
        # The device stays busy with the run the first server left: nothing started beside it.
        time.sleep(1.5)
        assert alice.predict(first, api_name="/train_status")["run"]["state"] == "queued"
        # Bob may still remove his queued run after the restart: it is his.
        bob = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
        assert bob.predict(second, api_name="/train_stop").startswith(f"Removed {second}")
        assert alice.predict(blocker, api_name="/train_stop").startswith(f"Stopping {blocker}")
        release(held)
        status = wait_state(alice, first, ("finished", "failed"), timeout=240)
        assert status["run"]["state"] == "finished", status
        assert len(status["history"]) == 1 and status["run"]["owner"] == "alice"
    finally:
        _shut(server)
        if held is not None and runs.pid_alive(held):  # the test failed midway
            os.killpg(held, signal.SIGTERM)
            release(held)
