"""`python -m resnext.train` and `torchrun ... -m resnext.train`, as child processes."""

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

from resnext import train
from resnext.train import runs
from resnext.train.__main__ import EXIT_USAGE, HASH_DIR_ENV, _state_hash, main

ROOT = Path(__file__).resolve().parents[1]
TINY = json.dumps({"cardinality": 4, "bottleneck_width": 16, "base_planes": 16,
                   "stage_blocks": [1, 1], "stem": "cifar"})
SMALL_DATA = ["--data", "shapes", "--image-size", "16", "--test-size", "32", "--batch-size", "32",
              "--config", TINY, "--quiet"]


def environment(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def test_sigterm_stops_after_a_whole_epoch_and_exits_0(tmp_path):
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "resnext.train", *SMALL_DATA, "--train-size", "64",
         "--epochs", "500", "--threads", "1", "--out", str(folder)],
        cwd=tmp_path, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (folder / "metrics.jsonl").exists():
            time.sleep(0.2)
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "running" and status["pid"] == process.pid
        assert json.loads((folder / "progress.json").read_text())["kind"] in ("step", "epoch")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped by SIGTERM" in out and "train loss" in out  # the closing table
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "stopped" and status["ended_at"] and status["error"] is None
    cfg, model, meta = train.load_run(folder)
    assert 1 <= meta["epoch"] < 500 and meta["metrics"]["epoch"] == meta["epoch"]
    assert len(meta["history"]) == meta["epoch"]


@pytest.mark.parametrize("arguments, message", [
    (["--data", "mnist"], "--data must be shapes, shapes-shortcut, shapes-distractors, cifar10, "
                          "cifar100 or folder"),
    (["--config", "{\"cardinality\": 0}"], "cardinality must be an integer in [1, 1024], got 0"),
    (["--data", "cifar10", "--data-root", "nowhere"], "put cifar-10-binary.tar.gz"),
    (["--epochs", "0", "--train-size", "8"], "epochs must be an integer in [1, 10000], got 0"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, arguments, message):
    assert main([*arguments, "--out", str(tmp_path / "run")], handle_signals=False) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,bounds", [
    ("--epochs", "EPOCHS_RANGE"), ("--batch-size", "BATCH_RANGE"), ("--seed", "SEED_RANGE"),
    ("--threads", "THREADS_RANGE"), ("--image-size", "IMAGE_SIZE_RANGE"),
    ("--train-size", "TRAIN_IMAGES_RANGE"), ("--test-size", "TEST_IMAGES_RANGE")])
def test_flags_are_checked_against_trainings_limits_before_any_data(flag, bounds, tmp_path,
                                                                     capsys):
    from resnext.train import limits

    low, high = getattr(limits, bounds)
    for outside in (low - 1, high + 1):
        argv = ["--data", "cifar10", "--data-root", "nowhere", flag, str(outside)]
        assert main([*argv, "--out", str(tmp_path / "run")], handle_signals=False) == EXIT_USAGE
        # The flag's range is refused before the (missing) CIFAR archive is looked for.
        assert f"{flag} must be an integer in [{low}, {high}], got {outside}" in (
            capsys.readouterr().err)


def test_learning_rate_flag_is_checked_against_trainings_limit(tmp_path, capsys):
    from resnext.train import limits

    assert main(["--lr", "0", "--out", str(tmp_path / "run")], handle_signals=False) == EXIT_USAGE
    low, high = limits.LR_RANGE
    assert f"--lr must be a number in ({low:g}, {high:g}], got 0.0" in capsys.readouterr().err


def test_data_help_and_refusal_list_the_data_registry():
    from resnext.data import registry
    from resnext.train.__main__ import parser

    text = " ".join(parser().format_help().split())
    for entry in registry.DATASETS.values():
        assert f"{entry.argument}: {entry.description}" in text
    assert registry.argument_forms() == ["shapes", "shapes-shortcut", "shapes-distractors",
                                         "cifar10", "cifar100", "folder:PATH"]


def test_exit_status_2_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "resnext.train", "--data", "mnist"],
                          cwd=tmp_path, env=environment(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: --data must be") and "Traceback" not in done.stderr


def test_torchrun_two_processes_same_weights_one_run_folder(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    hashes = tmp_path / "hashes"
    hashes.mkdir()
    runs_parent = tmp_path / "runs"
    # --standalone: a local rendezvous on a free port. Its own session, so that on a
    # timeout the workers go too, not only torchrun.
    process = subprocess.Popen(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "resnext.train",
         *SMALL_DATA, "--train-size", "200", "--epochs", "1", "--threads", "1",
         "--out", str(runs_parent / "ddp")],
        cwd=tmp_path, env=environment(**{HASH_DIR_ENV: str(hashes)}), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, err[-3000:]
    assert "terminate called" not in err
    assert [p.name for p in runs_parent.iterdir()] == ["ddp"]
    rank0, rank1 = (hashes / "rank0.sha256").read_text(), (hashes / "rank1.sha256").read_text()
    assert rank0 == rank1
    cfg, model, meta = train.load_run(runs_parent / "ddp")
    assert _state_hash(model) == rank0  # the saved run is the model both processes hold
    assert meta["environment"]["processes"] == 2
    assert meta["history"][0]["train_accuracy"] * 200 == pytest.approx(
        round(meta["history"][0]["train_accuracy"] * 200))  # counted over both shards


def start_torchrun(arguments, cwd, **streams):
    """`torchrun --standalone --nproc_per_node=2 -m resnext.train ARGUMENTS` in its own
    session, so that a signal or a kill reaches the workers too, not only torchrun."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2",
         "-m", "resnext.train", *arguments], cwd=cwd, env=environment(), text=True,
        start_new_session=True, **streams)


def finish(process, timeout=240):
    """(stdout, stderr) of a started torchrun; on a timeout its whole session is killed."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


TORCHRUN_EPOCHS = 3
TORCHRUN_RUN = [*SMALL_DATA, "--train-size", "192", "--epochs", str(TORCHRUN_EPOCHS),
                "--threads", "1", "--seed", "5"]


def without_timing(folder):
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_second")}
            for row in runs.read_metrics(folder)]


def test_torchrun_resume_is_the_run_left_alone(tmp_path, capsys):
    """Issue 18: "Under torchrun, resume works the same." Two processes stopped after epoch
    1, then `torchrun ... --resume`: the weights of the same run left alone, bit for bit, and
    its metrics; each process continues from its own RNG state and the sampler's epoch."""
    alone, stopped = tmp_path / "alone", tmp_path / "stopped"
    # Both at once (they share no files): the second is stopped once epoch 1 is saved.
    whole = start_torchrun([*TORCHRUN_RUN, "--out", str(alone)], tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process = start_torchrun([*TORCHRUN_RUN, "--out", str(stopped)], tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (stopped / runs.METRICS_FILE).exists():
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGTERM)  # torchrun and both workers: epoch 1 is saved
    err = finish(process, timeout=120)[1]
    out, whole_err = finish(whole)
    assert whole.returncode == 0, whole_err[-3000:]
    record = runs.read_run(stopped)
    if record.epochs_done >= TORCHRUN_EPOCHS:
        pytest.skip("the run finished before it could be stopped")
    assert record.state in ("stopped", "interrupted") and record.resumable, err[-3000:]
    assert json.loads((stopped / runs.RESUME_STATE_FILE).read_text())["processes"] == 2
    # One process cannot continue what two trained: the data order and RNG streams differ.
    assert main(["--resume", str(stopped)], handle_signals=False) == EXIT_USAGE
    assert "resume it with as many (torchrun --nproc_per_node=2), not 1" in (
        capsys.readouterr().err)

    process = start_torchrun(["--resume", str(stopped), "--quiet"], tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = finish(process)
    assert process.returncode == 0, err[-3000:]
    assert "(resumed)" in out and "finished; run folder" in out
    assert len(runs.read_metrics(stopped)) == TORCHRUN_EPOCHS
    assert without_timing(stopped) == without_timing(alone)
    left, right = (load_file(str(folder / runs.MODEL_FILE)) for folder in (stopped, alone))
    assert left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)
    status = runs.read_status(stopped)
    assert status["state"] == "finished" and len(status["resumed"]) == 1
    assert status["resumed"][0]["at_epoch"] == record.epochs_done
    assert runs.read_run(stopped).resumed == 1
    assert not (stopped / runs.RESUME_TENSORS_FILE).exists()


def _agreement_worker(rank, port, folder):
    """One of two processes calling engine._agreed twice: a slow read that must finish
    before rank 0 writes, then a read that fails in rank 1 only."""
    from resnext.train import engine

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    folder, written = Path(folder), Path(folder) / "written"

    def slow_read():
        if rank == 1:
            time.sleep(1.0)
        return written.exists()

    seen = engine._agreed(2, slow_read)
    if rank == 0:
        written.write_text("rank 0 marks the run running")

    def failing_read():
        if rank == 1:
            raise ValueError("rank 1 cannot read the data")
        return "read"

    try:
        outcome = engine._agreed(2, failing_read)
    except ValueError as error:
        outcome = f"{type(error).__name__}: {error}"
    (folder / f"rank{rank}.json").write_text(json.dumps({"seen": seen, "outcome": outcome}))
    torch.distributed.destroy_process_group()


def test_resume_processes_read_before_rank_0_writes_and_refuse_together(tmp_path):
    """Under torchrun every process reads the run folder before rank 0 marks it running
    (rank 1 reading later found a running run and refused, and rank 0 waited forever), and
    a process that cannot resume stops the others too, with its reason."""
    import socket

    import torch.multiprocessing

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_agreement_worker, args=(port, str(tmp_path)), nprocs=2,
                                join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["seen"] is False and rank1["seen"] is False
    assert rank1["outcome"] == "ValueError: rank 1 cannot read the data"
    assert rank0["outcome"] == ("RunError: process 1 cannot resume the run: "
                                "ValueError: rank 1 cannot read the data")


def test_every_flag_says_what_it_does_and_its_default():
    from resnext.train.__main__ import parser

    for action in parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{action.option_strings[0]} has no help"
        if action.nargs != 0:  # a value flag, not a switch
            assert "default" in action.help.lower(), f"{action.option_strings[0]}: no default"
