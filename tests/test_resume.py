"""Resume (issue 18, section 2): a run continued from its last finished epoch is the run left
alone, bit for bit on the CPU; what cannot be resumed is refused in one line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resnext import ResNeXtConfig, data, train
from resnext.train import runs
from resnext.train.__main__ import EXIT_USAGE, main
from test_train_tab import wait_for  # the Train tab tests' wait for a run's state

ROOT = Path(__file__).resolve().parents[1]
TINY = ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16, stage_blocks=(1, 1),
                     stem="cifar", num_classes=6)
EPOCHS, BATCH = 3, 32
TIMING_KEYS = {"seconds", "images_per_second"}
CLI = ["--data", "shapes", "--image-size", "16", "--train-size", "256", "--test-size", "32",
       "--batch-size", "32", "--epochs", "3", "--threads", "1", "--quiet", "--config",
       json.dumps({"cardinality": 4, "bottleneck_width": 16, "base_planes": 16,
                   "stage_blocks": [1, 1], "stem": "cifar"})]


@pytest.fixture(scope="module")
def images():
    # The quick recipe's flips and crops draw from torch's global RNG (kornia): a resume
    # that lost that state would differ from the first resumed step.
    return data.shapes(n_train=256, n_test=64, image_size=16, seed=3)


def fit(folder, images, **extra):
    torch.set_num_threads(1)
    return train.fit(TINY, images, epochs=EPOCHS, batch_size=BATCH, seed=4, out_dir=folder,
                     **extra)


def stop_after_epoch(epoch):
    """should_stop and on_progress for a run that stops once `epoch` epochs finished."""
    finished = []
    return (lambda: bool(finished)), (
        lambda event: finished.append(1) if event["kind"] == "epoch"
        and event["epoch"] >= epoch else None)


def without_timing(path):
    rows = runs.read_metrics(path)
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def same_tensors(a, b):
    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


@pytest.fixture(scope="module")
def alone(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("alone") / "run"
    fit(folder, images)
    return folder


def test_stopped_then_resumed_is_the_run_left_alone(tmp_path, images, alone):
    folder = tmp_path / "run"
    stop, progress = stop_after_epoch(1)
    stopped = fit(folder, images, should_stop=stop, on_progress=progress)
    assert stopped.stopped and len(stopped.history) == 1
    assert train.load_run(folder)[2]["epoch"] == 1
    record = runs.read_run(folder)
    assert record.state == "stopped" and record.resumable and record.resumed == 0
    assert (folder / runs.RESUME_TENSORS_FILE).is_file()
    state = json.loads((folder / runs.RESUME_STATE_FILE).read_text())
    assert state["epoch"] == 1 and state["global_step"] == 256 // BATCH

    result = train.resume(folder, images)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert without_timing(folder) == without_timing(alone)
    assert same_tensors(folder / runs.MODEL_FILE, alone / runs.MODEL_FILE)
    status = runs.read_status(folder)
    assert status["state"] == "finished" and len(status["resumed"]) == 1
    assert status["resumed"][0]["at_epoch"] == 1
    record = runs.read_run(folder)
    assert record.resumed == 1 and not record.resumable
    # a finished run keeps no resume state: the optimizer's is as large as the model
    assert not (folder / runs.RESUME_TENSORS_FILE).exists()


def test_the_resume_state_holds_no_pickle(tmp_path, images):
    folder = tmp_path / "run"
    stop, progress = stop_after_epoch(1)
    fit(folder, images, should_stop=stop, on_progress=progress)
    tensors = load_file(str(folder / runs.RESUME_TENSORS_FILE))
    assert "rng.torch.0" in tensors and tensors["rng.torch.0"].dtype == torch.uint8
    assert any(name.startswith("optimizer.") for name in tensors)  # SGD's momentum buffers
    state = json.loads((folder / runs.RESUME_STATE_FILE).read_text())
    assert {"epoch", "global_step", "optimizer", "rng", "history"} <= set(state)


def test_a_resume_with_lost_rng_state_differs(tmp_path, images, alone, monkeypatch):
    """The test above can fail: without the saved torch RNG the augmentation draws
    differently, and the weights differ from the run left alone."""
    from resnext.train import resume_state

    folder = tmp_path / "run"
    stop, progress = stop_after_epoch(1)
    fit(folder, images, should_stop=stop, on_progress=progress)
    monkeypatch.setattr(resume_state, "restore_rng", lambda *args: None)
    train.resume(folder, images)
    assert not same_tensors(folder / runs.MODEL_FILE, alone / runs.MODEL_FILE)


def test_resume_refuses_what_it_cannot_continue(tmp_path, images, alone, capsys):
    def refused(folder):
        capsys.readouterr()
        assert main(["--resume", str(folder)], handle_signals=False) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
        return err

    assert "finished its 3 epochs" in refused(alone)
    assert "is not a run folder" in refused(tmp_path)
    assert "is not a run folder" in refused(tmp_path / "nowhere")
    folder = tmp_path / "run"
    stop, progress = stop_after_epoch(1)
    fit(folder, images, should_stop=stop, on_progress=progress)
    status = runs.read_status(folder)
    # a live process whose command line names the training module, as a training run's does
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                runs.TRAINING_MODULE])
    try:
        runs.write_status(folder, {**status, "state": "running", "pid": sleeper.pid})
        assert "is running" in refused(folder)
    finally:
        sleeper.kill()
        sleeper.wait()
    runs.write_status(folder, status)
    assert "leave out --epochs" in refused_with(folder, ["--epochs", "7"], capsys)
    (folder / runs.RESUME_STATE_FILE).unlink()
    assert "has no resume state" in refused(folder)
    with pytest.raises(runs.RunError, match="has no resume state"):
        train.resume(folder, images)


def refused_with(folder, extra, capsys):
    capsys.readouterr()
    assert main(["--resume", str(folder), *extra], handle_signals=False) == EXIT_USAGE
    return capsys.readouterr().err.strip()


def environment():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_a_killed_cli_run_resumes_to_the_run_left_alone(tmp_path):
    """Interrupted: SIGKILL after the first epoch was saved (no handler runs), then
    `--resume`: the same weights and metrics as a run of the same command left alone."""
    alone, killed = tmp_path / "alone", tmp_path / "killed"
    done = subprocess.run([sys.executable, "-m", "resnext.train", *CLI, "--out", str(alone)],
                          cwd=tmp_path, env=environment(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    process = subprocess.Popen(
        [sys.executable, "-m", "resnext.train", *CLI, "--out", str(killed)], cwd=tmp_path,
        env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (killed / runs.METRICS_FILE).exists():
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    record = runs.read_run(killed)
    if record.epochs_done >= 3:
        pytest.skip("the run finished before it could be killed")
    assert record.state == "interrupted" and record.resumable
    done = subprocess.run([sys.executable, "-m", "resnext.train", "--resume", str(killed),
                           "--quiet"], cwd=tmp_path, env=environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(resumed)" in done.stdout
    assert without_timing(killed) == without_timing(alone)
    assert same_tensors(killed / runs.MODEL_FILE, alone / runs.MODEL_FILE)
    assert runs.read_run(killed).state == "finished"


# The app: Resume on the Train tab and /train_resume ------------------------------------------

def app_request(tmp_path, **changes):
    from explorer.selection import Selection
    from explorer.train import requests as service

    values = dict(data="shapes", image_size=16, train_size=256, test_size=32, epochs=40,
                  batch_size=64, recipe="quick", lr=None, seed=0, device="cpu")
    values.update(changes)
    small = TINY.replace(cardinality=2, base_planes=8)
    return service.make_request(Selection(small, 32), data_dir=tmp_path / "data", **values)


def wait_idle(manager, timeout=60.0):
    """Until the manager has followed its runs to their ends (their devices are free)."""
    deadline = time.monotonic() + timeout
    while manager.busy_devices() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not manager.busy_devices()


def test_the_app_resumes_a_stopped_run_for_its_owner_only(tmp_path):
    from types import SimpleNamespace

    import gradio as gr

    from explorer.train import views
    from explorer.train.jobs import QueueLimits, TrainingManager, state_cell
    from explorer.train.tab import make_api

    manager = TrainingManager(tmp_path / "runs", tmp_path / "data",
                              QueueLimits(per_user=1), admins=("admin",))
    run_id = manager.start(app_request(tmp_path), "alice")
    deadline = time.monotonic() + 180
    while not manager.status(run_id)["history"] and time.monotonic() < deadline:
        time.sleep(0.2)
    manager.stop(run_id, "alice")
    wait_for(manager, run_id, ("stopped", "finished", "failed"), timeout=180.0)
    wait_idle(manager)
    record = manager.record(run_id)
    assert record.state == "stopped" and record.resumable
    done = record.epochs_done

    with pytest.raises(runs.RunAccessError, match="belongs to alice"):
        manager.resume(run_id, "bob")
    other = manager.start(app_request(tmp_path, epochs=1, seed=1), "alice")  # alice's one slot
    with pytest.raises(ValueError, match="--max-runs-per-user"):
        manager.resume(run_id, "alice")  # a resume counts in the same bounds as a start
    wait_for(manager, other, ("finished", "failed"), timeout=180.0)
    wait_idle(manager)

    # through /train_resume, as alice (the API's user)
    api = make_api(SimpleNamespace(training=manager, user=lambda request: "alice"))
    answer = api["train_resume"](run_id)
    assert answer["run_id"] == run_id and f"from epoch {done}" in answer["message"]
    assert manager.status(run_id)["run"]["state"] in ("queued", "running")
    assert manager.active_run("alice") == run_id  # a reload re-attaches to it
    with pytest.raises(gr.Error, match="is already queued or running|is running|is queued"):
        api["train_resume"](run_id)
    deadline = time.monotonic() + 180
    while "images/s now" not in views.progress_html(manager.status(run_id)) \
            and time.monotonic() < deadline:
        time.sleep(0.2)  # until the continued training's own steps are shown
    assert runs.read_status(manager.run_dir(run_id)).get("resumed")
    assert "images/s now" in views.progress_html(manager.status(run_id))
    manager.stop(run_id, "admin")  # an admin may stop it; it keeps what it trained
    status = wait_for(manager, run_id, ("stopped", "finished", "failed"), timeout=180.0)
    assert status["run"]["state"] == "stopped", status["log_tail"]
    record = manager.record(run_id)
    assert record.resumed == 1 and record.epochs_done >= done
    assert state_cell(record) == "stopped (resumed)"
    assert runs.read_status(manager.run_dir(run_id))["resumed"][0]["at_epoch"] == done
    assert "stopped" in views.progress_html(manager.status(run_id))

    # Resume clicked the moment "stopped" shows, while the stopped process is still closing
    # (its job holds the device and alice's one slot until followed out): the app waits for
    # it instead of refusing the run as "already queued or running".
    import threading

    from explorer.train.jobs import TrainRequest, _Job

    wait_idle(manager)
    folder = manager.run_dir(run_id)
    closing = _Job(run_id, TrainRequest.from_dict(runs.read_request(folder)["request"]), "alice")
    manager._running[closing.request.device] = closing

    def followed_out():
        with manager._lock:
            manager._running.pop(closing.request.device)
        manager._pump(closing.request.device)

    threading.Timer(1.0, followed_out).start()
    began = time.monotonic()
    assert manager.resume(run_id, "alice").startswith(f"Resuming {run_id} from epoch")
    assert time.monotonic() - began >= 0.9
    wait_for(manager, run_id, ("running",), timeout=180.0)
    manager.stop(run_id, "alice")
    wait_for(manager, run_id, ("stopped", "finished", "failed"), timeout=180.0)
    wait_idle(manager)


def test_a_resumed_run_does_not_show_its_earlier_process_end_as_live():
    """Between Resume and the new process's first step, progress.json still holds the
    stopped process's "done" event (rate known, 0 s left): the page says it is resuming."""
    from explorer.train import views

    run = {"state": "running", "epochs": 40, "network": "ResNeXt-8", "dataset": "shapes",
           "run_id": "r", "device": "cpu"}
    ended = {"kind": "done", "epoch": 3, "epochs": 40, "global_step": 12, "steps_total": 160,
             "loss": None, "lr": 0.001, "images_per_second": 365.0, "eta_seconds": 0.0}
    history = [{"epoch": e, "test_accuracy": 0.2} for e in (1, 2, 3)]
    shown = views.progress_html({"run": run, "progress": ended, "history": history})
    assert "resuming after epoch 3/40" in shown and "left at that rate" not in shown
    live = views.progress_html({"run": run, "progress": {**ended, "kind": "step", "epoch": 4,
                                                         "global_step": 13, "loss": 1.7,
                                                         "eta_seconds": 27.0},
                                "history": history})
    assert "365 images/s now · about 27 s left at that rate" in live
