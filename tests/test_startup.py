"""`python -m explorer`'s start-up choices keep the app's behaviour (benchmarks/bench_app.py times it)."""

import gradio as gr
import pytest

from explorer.__main__ import one_event_at_a_time


@pytest.mark.parametrize("environment", [None, "5", "none"])
def test_each_event_runs_one_call_at_a_time(monkeypatch, environment):
    """Without the variable Gradio's default is already 1, so no second app build is needed;
    with it set to anything, the app still asks for 1."""
    if environment is None:
        monkeypatch.delenv("GRADIO_DEFAULT_CONCURRENCY_LIMIT", raising=False)
    else:
        monkeypatch.setenv("GRADIO_DEFAULT_CONCURRENCY_LIMIT", environment)
    with gr.Blocks() as demo:
        gr.Markdown("x")
    one_event_at_a_time(demo)
    assert demo._queue.default_concurrency_limit == 1


def test_start_up_pauses_the_cyclic_collector_and_then_cleans_up():
    import gc
    import weakref

    from explorer.__main__ import collector_paused_for_start_up

    class Node:
        pass

    assert gc.isenabled()
    try:
        with collector_paused_for_start_up():
            assert not gc.isenabled()
            cycle = Node()
            cycle.self = cycle  # cyclic garbage: only the collector can free it
            alive = weakref.ref(cycle)
            del cycle
            assert alive() is not None  # not collected while paused
        assert gc.isenabled()
        assert alive() is None  # freed by the collection at the end
        assert gc.get_freeze_count() > 0  # survivors moved out of later collections
    finally:
        gc.unfreeze()
        gc.enable()


def test_building_the_app_imports_no_torch_captum_or_matplotlib():
    """The server answers its first request before any heavy library loads (each tab builds
    its controls from torch-free modules; torch loads on first use)."""
    import subprocess
    import sys

    code = ("import sys; from explorer.app import create_app; create_app(); "
            "heavy = [m for m in ('torch', 'captum', 'kornia', 'matplotlib', 'torchinfo') "
            "if m in sys.modules]; print(heavy); assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_reading_a_run_folder_imports_no_torch(tmp_path):
    """The app follows training runs (and lists them) with the library's run-file reader,
    which must not pull torch in; the files it reads are the ones a run writes."""
    import json
    import subprocess
    import sys

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n{torn")
    (tmp_path / "status.json").write_text(json.dumps({"state": "running"}))
    code = ("import sys; from resnext.train import runs; import explorer.train.jobs; "
            f"folder = {str(tmp_path)!r}; "
            "assert runs.read_metrics(folder) == [{'epoch': 1}]; "
            "assert runs.read_json(folder + '/status.json') == {'state': 'running'}; "
            "assert runs.read_json(folder + '/missing.json') is None; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
