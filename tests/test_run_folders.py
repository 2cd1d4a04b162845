"""A run folder is known in one place, `resnext.train.runs`: the run id check every caller
goes through, the record a runs table shows (torch-free), which runs are usable, and the
names of new runs. The app's readers (the Train tab's manager and API, the Evaluate tab,
the weights choice) are tested here to use it rather than copies of their own."""

import json
import os
import subprocess
import sys

import pytest

from resnext import ResNeXtConfig
from resnext.train import runs

TINY = ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8, stage_blocks=(1, 1),
                     stem="cifar", num_classes=6)
BAD_IDS = ["../x", "/etc", ".hidden", "", "  ", "a/b", "..", "a\\b", None, 3]


def write_run(folder, state="finished", dataset="shapes", epochs=2, weights=True, pid=None):
    """A run folder as the engine writes it (weights as an empty file: nothing loads them)."""
    folder.mkdir(parents=True)
    runs.write_config(folder, {"model": TINY.to_dict(), "data": {"name": dataset},
                               "epochs": epochs, "environment": {"device": "cpu"}})
    runs.write_metrics(folder, [{"epoch": e + 1, "test_accuracy": 0.5 + e / 10, "seconds": 2.0}
                                for e in range(epochs)])
    runs.write_status(folder, runs.status_record(state, "2026-01-01T00:00:00Z", epochs, "cpu",
                                                 ended=state != "running", pid=pid))
    if weights:
        runs.model_file(folder).write_bytes(b"")
    return folder


def app_context(manager, data_dir):
    """The Train tab's context around `manager`, as the app builds it (no accounts)."""
    from explorer.context import AppOptions, TabContext

    return TabContext(options=AppOptions(data_dir=data_dir), demo=None, selection=None,
                      weights=None, training=manager)


@pytest.mark.parametrize("run_id", BAD_IDS)
def test_a_run_id_is_a_folder_name_directly_inside_the_runs_directory(tmp_path, run_id):
    with pytest.raises(ValueError, match="not a run id"):
        runs.run_dir(tmp_path, run_id)


def test_a_good_run_id_is_its_folder(tmp_path):
    assert runs.run_dir(tmp_path, "20260101-000000-c2d16-8-shapes") == (
        tmp_path / "20260101-000000-c2d16-8-shapes")


@pytest.fixture
def spied_run_dir(monkeypatch):
    """Every call of the one run id check, recorded."""
    calls = []
    original = runs.run_dir

    def spy(runs_dir, run_id):
        calls.append(run_id)
        return original(runs_dir, run_id)

    monkeypatch.setattr(runs, "run_dir", spy)
    return calls


def test_every_app_reader_of_a_run_id_uses_the_one_check(tmp_path, spied_run_dir):
    import gradio as gr

    from explorer.evaluate import runs as evaluate
    from explorer.train import tab
    from explorer.train.jobs import TrainingManager

    manager = TrainingManager(tmp_path / "runs", tmp_path / "data")
    api = tab.make_api(app_context(manager, tmp_path))
    readers = {
        "manager.status": manager.status, "manager.record": manager.record,
        "manager.stop": manager.stop, "manager.delete": manager.delete,
        "evaluate.run_folder": lambda run_id: evaluate.run_folder(tmp_path, run_id),
        "evaluate.describe_run": lambda run_id: evaluate.describe_run(tmp_path, run_id),
        "/train_status": api["train_status"], "/train_stop": api["train_stop"],
        "/delete_run": api["delete_run"], "/use_run": api["use_run"]}
    for name, reader in readers.items():
        for run_id in ("../x", "/etc", ".hidden"):
            spied_run_dir.clear()
            with pytest.raises((ValueError, gr.Error), match="not a run id"):
                reader(run_id)
            assert spied_run_dir == [run_id], name


def test_the_train_tabs_page_handlers_refuse_a_path_too(tmp_path, spied_run_dir):
    from explorer.train import tab
    from explorer.train.jobs import TrainingManager

    manager = TrainingManager(tmp_path / "runs", tmp_path / "data")
    handlers = tab.Handlers(app_context(manager, tmp_path))
    for name in ("show_run", "use_run"):
        spied_run_dir.clear()
        getattr(handlers, name)("../../etc")  # keep_state: a warning, the page unchanged
        assert spied_run_dir == ["../../etc"], name


def test_a_record_reads_the_folder_without_torch(tmp_path):
    write_run(tmp_path / "r1", epochs=3)
    code = ("import sys; from resnext.train import runs; "
            f"r = runs.read_run({str(tmp_path / 'r1')!r}); "
            "assert (r.state, r.network, r.dataset, r.epochs_done, r.epochs) == "
            f"('finished', {TINY.name!r}, 'shapes', 3, 3), r; "
            "assert abs(r.test_accuracy - 0.7) < 1e-9 and r.best_epoch == 3; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_running_run_whose_process_is_gone_is_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(tmp_path / "gone", state="running", pid=dead.pid)
    write_run(tmp_path / "mine", state="running", pid=os.getpid())  # alive, not training
    for name in ("gone", "mine"):
        assert runs.read_run(tmp_path / name).state == "interrupted"
        assert runs.running_pid(tmp_path / name) is None
    assert not runs.pid_alive(True) and not runs.pid_alive("1")


def test_usable_runs_ended_with_weights_and_masks_when_asked(tmp_path):
    write_run(tmp_path / "a-finished")
    write_run(tmp_path / "b-stopped", state="stopped")
    write_run(tmp_path / "c-failed", state="failed")
    write_run(tmp_path / "d-no-weights", weights=False)
    write_run(tmp_path / "e-cifar", dataset="cifar10")
    write_run(tmp_path / ".f-hidden")
    listed = runs.list_runs(tmp_path)
    assert [r.run_id for r in listed] == ["e-cifar", "d-no-weights", "c-failed", "b-stopped",
                                          "a-finished"]  # newest (largest name) first
    assert [r.run_id for r in listed if runs.usable(r, tmp_path)] == [
        "e-cifar", "b-stopped", "a-finished"]
    assert [r.run_id for r in listed if runs.usable(r, tmp_path, masks=True)] == [
        "b-stopped", "a-finished"]
    assert runs.usable_run(tmp_path, "a-finished", masks=True) == tmp_path / "a-finished"
    for run_id, message in [("c-failed", "c-failed is failed; only finished or stopped"),
                            ("d-no-weights", "only finished or stopped runs with saved"),
                            ("e-cifar", "cifar10, whose test images have no object masks; "
                                        "evaluation needs a run on shapes or shapes-shortcut or "
                                        "shapes-distractors"),
                            ("zz", "no run 'zz'"), ("../a-finished", "not a run id")]:
        with pytest.raises(ValueError, match=message):
            runs.usable_run(tmp_path, run_id, masks=True)


def test_the_apps_lists_are_the_usable_runs(tmp_path):
    from explorer.evaluate import runs as evaluate
    from explorer.train.jobs import TrainingManager

    write_run(tmp_path / "a-finished")
    write_run(tmp_path / "c-failed", state="failed")
    write_run(tmp_path / "e-cifar", dataset="cifar10")
    manager = TrainingManager(tmp_path, tmp_path / "data")
    assert manager.usable_runs() == ["e-cifar", "a-finished"]  # the Train tab's Run list
    assert evaluate.evaluable_runs(manager) == ["a-finished"]
    assert evaluate.RUN_INFO == ("finished or stopped runs on shapes / shapes-shortcut / "
                                 "shapes-distractors")


def test_new_run_ids_are_fresh_folder_names(tmp_path, monkeypatch):
    monkeypatch.setattr(runs.time, "strftime", lambda fmt, when=None: "20260101-000000")
    first = runs.new_run_id(tmp_path, TINY, "folder:pets/x")
    assert first == f"20260101-000000-c2d16-{TINY.depth}-folder-pets-x"
    assert runs.run_dir(tmp_path, first) == tmp_path / first
    (tmp_path / first).mkdir()
    assert runs.new_run_id(tmp_path, TINY, "folder:pets/x") == first + "-2"
    assert runs.new_run_id(tmp_path, TINY, "folder:pets/x", taken={first + "-2"}) == (
        first + "-3")


def test_trained_config_names_what_is_missing(tmp_path):
    write_run(tmp_path / "r")
    with pytest.raises(ValueError, match="r is not a readable run .*classes"):
        runs.trained_config(tmp_path / "r")
    config = json.loads((tmp_path / "r" / runs.CONFIG_FILE).read_text())
    config["data"].update(classes=["a"], image_size=16, mean=[0.5] * 3, std=[0.2] * 3)
    runs.write_config(tmp_path / "r", config)
    assert runs.trained_config(tmp_path / "r")["data"]["image_size"] == 16


# Owners, the queue on disk, deleting (issue 20) ----------------------------------------------------

def test_the_one_rule_of_who_may_manage_a_run():
    runs.check_owner("r", "alice", "alice", (), "stop")
    runs.check_owner("r", "alice", "carol", ("carol",), "delete")
    runs.check_owner("r", None, "carol", ("carol",), "delete")
    with pytest.raises(runs.RunAccessError, match="r belongs to alice: only its owner or an "
                                                   "admin can stop it"):
        runs.check_owner("r", "alice", "bob", ("carol",), "stop")
    with pytest.raises(runs.RunAccessError, match="records no owner .* only an admin can delete"):
        runs.check_owner("r", None, "bob", ("carol",), "delete")
    assert issubclass(runs.RunAccessError, ValueError)  # shown to users as a message


def test_queued_runs_are_folders_in_the_order_they_were_queued(tmp_path):
    order = ["c-first", "b-second", "a-third"]  # queued in this order; names sort otherwise
    for run_id in order:
        runs.queue_run(tmp_path, run_id, "alice", {"config": TINY.to_dict(), "data": "shapes"},
                       3, "cpu")
    with pytest.raises(FileExistsError):
        runs.queue_run(tmp_path, "c-first", "bob", {}, 1, "cpu")
    assert [run_id for run_id, _ in runs.queued_runs(tmp_path)] == order
    record = runs.read_run(tmp_path / "b-second")
    assert (record.state, record.owner, record.network, record.dataset, record.epochs) == (
        "queued", "alice", TINY.name, "shapes", 3)
    assert runs.claim(tmp_path / "c-first") and not runs.claim(tmp_path / "c-first")
    assert [run_id for run_id, _ in runs.queued_runs(tmp_path)] == order[1:]  # claimed: taken
    runs.mark_started(tmp_path / "c-first", os.getpid(), 3, "cpu")
    assert runs.read_status(tmp_path / "c-first")["state"] == "running"
    assert not runs.claim(tmp_path / "c-first")  # not queued any more
    with pytest.raises(ValueError, match="not a run id"):
        runs.queue_run(tmp_path, "../x", "alice", {}, 1, "cpu")


def test_folder_size_is_the_bytes_of_its_files(tmp_path):
    folder = write_run(tmp_path / "r1")
    (folder / "model.safetensors").write_bytes(b"\0" * 12_345)
    (folder / "sub").mkdir()
    (folder / "sub" / "x").write_bytes(b"12345")
    expected = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert runs.folder_size(folder) == expected >= 12_350
    assert runs.read_run(folder).size_bytes == expected


def test_delete_run_removes_exactly_that_folder(tmp_path):
    keep = write_run(tmp_path / "keep")
    gone = write_run(tmp_path / "gone")
    size = runs.folder_size(gone)
    assert runs.delete_run(tmp_path, "gone") == size
    assert not gone.exists() and sorted(p.name for p in keep.iterdir()) == sorted(
        ["config.json", "metrics.jsonl", "status.json", "model.safetensors"])
    with pytest.raises(runs.RunError, match="no run 'gone'"):
        runs.delete_run(tmp_path, "gone")


@pytest.mark.parametrize("run_id", ["../x", "/etc", "a/b", ".", "..", ".hidden", ""])
def test_delete_run_refuses_a_path(tmp_path, run_id):
    runs_dir = tmp_path / "runs"
    write_run(runs_dir / "keep")
    write_run(tmp_path / "x")
    with pytest.raises(ValueError, match="not a run id"):
        runs.delete_run(runs_dir, run_id)
    assert (tmp_path / "x").is_dir() and (runs_dir / "keep").is_dir()


def test_delete_run_refuses_a_link_a_non_run_and_a_running_run(tmp_path):
    runs_dir = tmp_path / "runs"
    outside = write_run(tmp_path / "outside")
    runs_dir.mkdir()
    (runs_dir / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(runs.RunError, match="is a link"):
        runs.delete_run(runs_dir, "link")
    (runs_dir / "notes").mkdir()
    (runs_dir / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(runs.RunError, match="holds no run"):
        runs.delete_run(runs_dir, "notes")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "resnext.train"])  # a process pid_alive takes for a training
    try:
        write_run(runs_dir / "live", state="running", pid=live.pid)
        with pytest.raises(runs.RunError, match="is running: stop it first"):
            runs.delete_run(runs_dir, "live")
    finally:
        live.kill()
        live.wait()
    assert outside.is_dir() and (runs_dir / "notes" / "todo.txt").exists()
    assert (runs_dir / "live").is_dir()
    runs.delete_run(runs_dir, "live")  # its process is gone: interrupted, deletable
