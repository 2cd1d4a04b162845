"""The Run tab: measuring forward passes (service), its handlers, and the real HTTP API."""

import json
import statistics
import time

import pytest
import torch
from gradio_client.exceptions import AppError
from torch.utils.flop_counter import FlopCounterMode

import resnext
from explorer.selection import Selection
from explorer.run import views
from explorer.run import runner
from explorer.shared.models import IMAGENET, ModelCache, WeightsChoice, build_weighted_model
from explorer.run import tab as run_tab

TINY = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2, stage_blocks=(1, 1), stem="cifar")
TINY_SIDE = 32
TINY_JSON = json.dumps({**TINY.to_dict(), "image_size": TINY_SIDE})
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
HAS_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def tiny_request(**changes):
    values = dict(config=TINY, image_size=TINY_SIDE, device="cpu", batch_size=2, warmup=1,
                  iterations=3)
    values.update(changes)
    return runner.make_request(**values)


class SleepyModel(torch.nn.Module):
    """Sleeps a known time per pass and records what it was given: timing with a known answer."""

    def __init__(self, seconds: float, num_classes: int = 1000) -> None:
        super().__init__()
        self.seconds = seconds
        self.num_classes = num_classes
        self.calls = 0
        self.inference_mode = []
        self.pass_seconds = []  # each pass as timed from inside: an outside clock for the runner's

    def forward(self, x):
        start = time.perf_counter()
        self.calls += 1
        self.inference_mode.append(torch.is_inference_mode_enabled())
        time.sleep(self.seconds)
        self.pass_seconds.append(time.perf_counter() - start)
        return torch.zeros(x.shape[0], self.num_classes)


def channels_last_only(tensor: torch.Tensor) -> bool:
    """Laid out channels-last and not contiguous: both can hold only for a tensor whose
    channel and spatial dimensions are all > 1 (a 1x1 kernel or one channel satisfies both)."""
    return tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()


class Probe:
    """Builds the real model for the runner's cache and records, at every pass, what the
    model the runner actually used computed with: a grouped 3x3 conv's weight and output
    (dtype, layout; (8, 2, 3, 3) and (N, 8, H, W), whose layouts differ) and the pass's time
    measured inside the model (optionally lengthened by a known sleep)."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.sleep_s = sleep_s
        self.models = []
        self.passes = []  # dict per forward pass

    def __call__(self, config, weights, device, dtype):
        model = build_weighted_model(config, weights, device, dtype)
        conv = model.layer1[0].conv2
        assert conv.weight.shape[1:] == (2, 3, 3)  # grouped 3x3: channels-last is visible

        def before(module, args):
            self.passes.append({"start": time.perf_counter(), "batch": args[0].shape[0]})

        def at_conv(module, args, output):
            self.passes[-1].update(weight_dtype=module.weight.dtype, output_dtype=output.dtype,
                                   weight_channels_last=channels_last_only(module.weight),
                                   output_channels_last=channels_last_only(output))

        def after(module, args, output):
            time.sleep(self.sleep_s)
            self.passes[-1].update(seconds=time.perf_counter() - self.passes[-1]["start"],
                                   logits_dtype=output.dtype)

        model.register_forward_pre_hook(before)
        conv.register_forward_hook(at_conv)
        model.register_forward_hook(after)
        self.models.append(model)
        return model

    def timed(self, iterations: int, batch: int | None = None) -> list[dict]:
        """The last `iterations` passes (of `batch`): the timed ones follow the warm-up."""
        passes = [p for p in self.passes if batch is None or p["batch"] == batch]
        return passes[-iterations:]


def flop_counter_macs(config, side: int) -> int:
    """Multiply-adds of one image by PyTorch's own counter (it counts 2 FLOPs per MAC)."""
    model = resnext.build_model(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    return counter.get_total_flops() // 2


def plan_for(request):
    return runner.memory_plan(request.config, request.image_size, request.batch_size,
                              request.dtype, request.device)


# Measuring ---------------------------------------------------------------------------------

def test_timings_have_a_known_answer_and_skip_warmup():
    model = SleepyModel(0.02)
    request = tiny_request(warmup=2, iterations=5)
    result = runner.measure(model, request, plan_for(request))
    assert model.calls == 7  # 2 warm-up + 5 timed
    assert len(result.timings.seconds) == 5
    assert all(model.inference_mode)
    assert 20 <= result.median_ms < 200  # sleep(0.02) is at least 20 ms, noisy machine or not
    assert result.p10_ms <= result.median_ms <= result.p90_ms
    # The model's own clock agrees (the runner's window holds the pass plus microseconds).
    inside = statistics.median(model.pass_seconds[2:])
    assert result.median_ms == pytest.approx(inside * 1e3, rel=0.05)
    assert result.images_per_second == pytest.approx(2 / inside, rel=0.05)


def test_percentiles_interpolate_like_numpy():
    timings = runner.Timings((5.0, 1.0, 3.0, 2.0, 4.0))
    assert timings.median == 3.0
    assert timings.percentile(10) == pytest.approx(1.4)
    assert timings.percentile(90) == pytest.approx(4.6)
    assert runner.Timings((7.0,)).percentile(90) == 7.0


def test_real_run_reports_every_figure():
    probe = Probe(sleep_s=0.02)  # a known floor per pass, so the outside clock dominates noise
    seen = []
    result = runner.run(tiny_request(batch_size=3), lambda f, label: seen.append((f, label)),
                        cache=ModelCache(builder=probe))
    macs = flop_counter_macs(TINY, TINY_SIDE)
    assert result.output_shape == (3, 1000) and result.shape_ok
    assert result.macs_per_image == macs
    inside = statistics.median(p["seconds"] for p in probe.timed(3))
    assert result.images_per_second == pytest.approx(3 / inside, rel=0.05)
    assert result.gflops_per_second == pytest.approx(2 * macs * 3 / inside / 1e9, rel=0.05)
    assert result.environment.torch_version == torch.__version__
    assert result.environment.threads == torch.get_num_threads()
    assert result.top5 is None  # random weights: no predictions shown
    labels = [label for _, label in seen]
    assert labels[0].startswith("building") and labels[-1] == "done"
    assert labels[1:-1] == ["warm-up 1/1", "timed iteration 1/3", "timed iteration 2/3",
                            "timed iteration 3/3"]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    data = result.as_dict()
    assert data["output_shape"] == [3, 1000] and len(data["iteration_ms"]) == 3
    json.dumps(data)  # the API returns it as JSON


def test_repeated_runs_reuse_the_cached_model():
    cache = ModelCache()
    runner.run(tiny_request(), cache=cache)
    runner.run(tiny_request(batch_size=1, channels_last=True), cache=cache)
    assert cache.builds == 1
    runner.run(tiny_request(dtype="bfloat16"), cache=cache)
    assert cache.builds == 2


def test_channels_last_runs_channels_last_and_restores_the_shared_model():
    probe = Probe()
    cache = ModelCache(builder=probe)
    runner.run(tiny_request(channels_last=True), cache=cache)
    assert len(probe.passes) == 4  # 1 warm-up + 3 timed, every one channels-last
    assert all(p["weight_channels_last"] and p["output_channels_last"] for p in probe.passes)
    weight = probe.models[0].layer1[0].conv2.weight
    assert weight.is_contiguous() and not channels_last_only(weight)  # as other tabs expect
    probe.passes.clear()
    runner.run(tiny_request(channels_last=False), cache=cache)
    assert len(probe.models) == 1  # the same cached model, now run contiguous
    assert not any(p["weight_channels_last"] or p["output_channels_last"] for p in probe.passes)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_the_model_computes_in_the_dtype_asked_for(dtype):
    probe = Probe()
    result = runner.run(tiny_request(dtype=dtype, iterations=1), cache=ModelCache(builder=probe))
    expected = getattr(torch, dtype)
    assert result.shape_ok and probe.passes
    assert all(p["weight_dtype"] == p["output_dtype"] == p["logits_dtype"] == expected
               for p in probe.passes)


def test_top5_with_trained_weights_names_imagenet_classes():
    trained = WeightsChoice(kind=IMAGENET, name="fake-for-test")

    def builder(config, weights, device, dtype):
        # Random weights standing in for a checkpoint; the fc bias makes class 1 win.
        model = build_weighted_model(config, WeightsChoice(), device, dtype)
        with torch.no_grad():
            model.fc.weight.zero_()
            model.fc.bias.zero_()
            model.fc.bias[1] = 10.0
            model.fc.bias[2] = 5.0
        return model

    result = runner.run(tiny_request(weights=trained, iterations=1),
                        cache=ModelCache(builder=builder))
    names = [name for name, _ in result.top5]
    assert names[:2] == ["goldfish", "great white shark"] and len(names) == 5
    probabilities = [p for _, p in result.top5]
    assert probabilities == sorted(probabilities, reverse=True)
    # softmax of logits 10, 5 and 998 zeros
    denominator = torch.tensor(10.0).exp() + torch.tensor(5.0).exp() + 998
    assert probabilities[0] == pytest.approx(float(torch.tensor(10.0).exp() / denominator), rel=1e-5)
    assert probabilities[2] == pytest.approx(float(1 / denominator), rel=1e-5)


def test_class_names_file_is_imagenet_order():
    from explorer.shared.predictions import imagenet_class_names

    names = imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"


def test_top5_of_a_head_without_imagenet_names():
    from explorer.shared.predictions import class_names_for, top_predictions

    logits = torch.tensor([[0.0, 3.0, 1.0]])
    assert [name for _, name, _ in top_predictions(logits, class_names_for(3))] == [
        "class 1", "class 2", "class 0"]


# Memory budget -----------------------------------------------------------------------------

def test_memory_plan_is_linear_in_batch_and_halves_in_16_bits():
    device = runner.resolve_device("cpu")
    one = runner.memory_plan(TINY, TINY_SIDE, 1, "float32", device, budget_bytes=10**12)
    eight = runner.memory_plan(TINY, TINY_SIDE, 8, "float32", device, budget_bytes=10**12)
    half = runner.memory_plan(TINY, TINY_SIDE, 8, "bfloat16", device, budget_bytes=10**12)
    report = resnext.complexity(TINY, TINY_SIDE)
    assert one.weight_bytes == report.weight_bytes
    assert eight.activation_bytes == 8 * one.activation_bytes == 8 * report.activation_bytes
    assert half.estimate_bytes == eight.estimate_bytes // 2


def test_default_budget_is_half_of_available_ram():
    import psutil

    plan = runner.memory_plan(TINY, TINY_SIDE, 1, "float32", runner.resolve_device("cpu"))
    available = psutil.virtual_memory().available
    assert 0.4 * available < plan.budget_bytes < 0.6 * available
    assert "half of the available RAM" == plan.budget_source


def test_run_over_budget_is_refused_before_building():
    cache = ModelCache()
    request = tiny_request(batch_size=64)
    plan = plan_for(request)
    with pytest.raises(runner.RunRefused) as refusal:
        runner.run(request, cache=cache, budget_bytes=plan.estimate_bytes - 1)
    message = str(refusal.value)
    assert "over the budget" in message and "GB" in message
    assert f"{plan.estimate_bytes / 1e9:,.2f} GB" in message
    assert cache.builds == 0


def test_out_of_memory_is_reported_and_the_next_run_works():
    class Exhausted(torch.nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    cache = ModelCache(builder=lambda *args: Exhausted())
    with pytest.raises(runner.RunRefused, match="ran out of memory"):
        runner.run(tiny_request(), cache=cache)
    assert runner.run(tiny_request(), cache=ModelCache()).shape_ok


# Validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "batch size must be an integer in \\[1, 1024\\], got 0"),
    ({"batch_size": 100000}, "batch size must be an integer in \\[1, 1024\\], got 100000"),
    ({"batch_size": 2.5}, "batch size must be an integer in \\[1, 1024\\], got 2.5"),
    ({"warmup": -1}, "warm-up passes must be"),
    ({"iterations": 0}, "timed passes must be"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"dtype": "float16"}, "dtype 'float16' is not offered on cpu"),
    ({"dtype": "int8"}, "dtype 'int8' is not offered"),
])
def test_bad_requests_say_what_is_wrong(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_request(**changes)


@HAS_CUDA
def test_cuda_without_cuda_is_refused():
    with pytest.raises(ValueError, match="no such CUDA GPU"):
        tiny_request(device="cuda")


def test_cpu_offers_no_float16_and_says_why():
    cpu = runner.resolve_device("cpu")
    assert runner.dtype_choices(cpu) == ["float32", "bfloat16"]
    assert "float16 is GPU-only" in runner.dtype_note(cpu)


def test_api_weights_names():
    assert runner.weights_from_name("random:7") == WeightsChoice(seed=7)
    assert runner.weights_from_name("").kind == "random"
    assert runner.weights_from_name("resnext50_32x4d.IMAGENET1K_V2").trained
    with pytest.raises(ValueError, match="unknown weights"):
        runner.weights_from_name("mystery")


# Sweep -------------------------------------------------------------------------------------

def test_sweep_measures_each_power_of_two():
    probe = Probe(sleep_s=0.01)
    sweep = runner.sweep(tiny_request(iterations=2), 4, cache=ModelCache(builder=probe))
    assert [p.batch_size for p in sweep.points] == [1, 2, 4]
    assert [p["batch"] for p in probe.passes] == [1] * 3 + [2] * 3 + [4] * 3  # 1 warm-up + 2
    for point in sweep.points:
        inside = statistics.median(p["seconds"] for p in probe.timed(2, point.batch_size))
        assert point.images_per_second == pytest.approx(point.batch_size / inside, rel=0.05)
        assert point.p10_ms <= point.median_ms <= point.p90_ms
    assert sweep.skipped == []


def test_sweep_stops_at_the_budget_and_says_so():
    device = runner.resolve_device("cpu")
    one = runner.memory_plan(TINY, TINY_SIDE, 1, "float32", device, budget_bytes=0)
    budget = one.weight_bytes + int(2.5 * one.activation_bytes)  # batch 1 and 2 fit, 4 not
    sweep = runner.sweep(tiny_request(iterations=1), 8, cache=ModelCache(), budget_bytes=budget)
    assert [p.batch_size for p in sweep.points] == [1, 2]
    assert len(sweep.skipped) == 1 and sweep.skipped[0].startswith("batch 4:")


# GPU (real hardware only) ------------------------------------------------------------------

@NO_CUDA
def test_cuda_run_reports_max_memory_allocated():
    result = runner.run(tiny_request(device="cuda:0", dtype="float16"), cache=ModelCache())
    assert result.shape_ok and result.peak_memory_bytes > 0
    assert torch.cuda.get_device_name(0) in result.environment.device_name
    assert "max_memory_allocated" in result.memory_note


# Handlers ----------------------------------------------------------------------------------

def test_run_button_adds_rows_to_the_users_table():
    selection = Selection(TINY, TINY_SIDE)
    answer = run_tab.run_selected(selection, WeightsChoice(), "cpu", 2, "float32", False, 1, 2,
                                  [])
    html, top5, history, csv_file = (answer[name] for name in ("result", "top5", "history",
                                                                "csv"))
    assert "Median latency" in html and "2×1000" in html and "as expected" in html
    assert top5["visible"] is False and answer["table"] == history
    # The runs table's CSV: the same rows, offered once there is one.
    assert csv_file["visible"] is True
    lines = open(csv_file["value"], encoding="utf-8").read().strip().splitlines()
    assert lines[0] == ",".join(views.HISTORY_COLUMNS) and lines[1].startswith(f"1,{TINY.name},")
    assert len(history) == 1 and history[0][1] == TINY.name and history[0][3] == 2
    history = run_tab.run_selected(
        selection, WeightsChoice(), "cpu", 1, "bfloat16", True, 0, 1, history)["history"]
    assert [row[0] for row in history] == [1, 2]
    assert history[1][3:5] == [1, "cpu · bfloat16 · channels-last"]


def test_summary_warns_before_an_over_budget_run():
    huge = Selection(resnext.PRESETS["resnext101_32x8d"], 1024)
    text = views.run_preview(huge, WeightsChoice(), "cpu", 1024, "float32")
    assert "over budget" in text and "ResNeXt-101 (32x8d)" in text
    fine = views.run_preview(Selection(TINY, TINY_SIDE), WeightsChoice(), "cpu", 1, "float32")
    assert ": fits." in fine and "random (seed 0)" in fine


def test_device_change_offers_only_its_dtypes():
    update = run_tab.device_options("cpu", "float16")
    assert update["choices"] == ["float32", "bfloat16"] and update["value"] == "float32"


def test_sweep_button_shows_the_chart():
    answer = run_tab.sweep_selected(Selection(TINY, TINY_SIDE), WeightsChoice(), "cpu",
                                    "float32", False, 1, 2)
    plot, note = answer["sweep_plot"], answer["sweep_note"]
    assert plot["visible"] is True and [list(t.x) for t in plot["value"].data] == [[1, 2]] * 2
    assert note["visible"] is False


def test_sweep_figure_plots_latency_and_throughput():
    sweep = runner.Sweep([runner.SweepPoint(1, 10.0, 9.0, 12.0, 100.0),
                          runner.SweepPoint(2, 15.0, 14.0, 16.0, 133.3)])
    figure = views.batch_sweep_figure(sweep, "t")
    latency, throughput = figure.data
    assert list(latency.y) == [10.0, 15.0] and list(latency.error_y.array) == [2.0, 1.0]
    assert list(throughput.y) == [100.0, 133.3]


# HTTP API ----------------------------------------------------------------------------------

def api_run(client, **changes):
    values = dict(config_json=TINY_JSON, image_size=None, device="cpu", batch_size=2,
                  dtype="float32", channels_last=False, warmup=1, iterations=2, weights="random")
    values.update(changes)
    return client.predict(*values.values(), api_name="/run")


def test_api_run(client):
    result = api_run(client, channels_last=True)
    assert result["output_shape"] == [2, 1000] and result["shape_ok"] is True
    assert len(result["iteration_ms"]) == 2
    assert result["median_ms"] == pytest.approx(statistics.median(result["iteration_ms"]))
    assert result["macs_per_image"] == flop_counter_macs(TINY, TINY_SIDE)
    assert result["channels_last"] is True and result["weights"] == "random (seed 0)"


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "batch size must be an integer in \\[1, 1024\\], got 0"),
    ({"batch_size": 100000}, "batch size must be an integer in \\[1, 1024\\]"),
    ({"device": "tpu"}, "unknown device"),
    ({"dtype": "float16"}, "not offered on cpu"),
    ({"config_json": "{\"cardinality\": 0}"}, "cardinality"),
])
def test_api_bad_values_get_clear_errors_and_the_server_keeps_serving(client, changes, message):
    with pytest.raises(AppError, match=message):
        api_run(client, **changes)
    assert client.predict(api_name="/ping") == "ok"


@HAS_CUDA
def test_api_cuda_without_cuda(client):
    with pytest.raises(AppError, match="no such CUDA GPU"):
        api_run(client, device="cuda")


def test_api_refuses_over_budget(client):
    big = json.dumps({**resnext.PRESETS["resnext101_32x8d"].to_dict(), "image_size": 1024})
    with pytest.raises(AppError, match="over the budget"):
        api_run(client, config_json=big, batch_size=1024)
    assert api_run(client)["shape_ok"] is True


def test_api_sweep(client):
    result = client.predict(TINY_JSON, None, "cpu", "float32", False, 1, 4, "random",
                            api_name="/sweep")
    assert [p["batch_size"] for p in result["points"]] == [1, 2, 4]


def test_api_sweep_reports_its_progress_to_the_caller(client):
    """Why /run and /sweep stay events, not gr.api: a caller sees each pass go by."""
    job = client.submit(TINY_JSON, None, "cpu", "float32", False, 20, 8, "random",
                        api_name="/sweep")
    seen = set()
    while not job.done():
        seen.update(p.desc for p in job.status().progress_data or [])
        time.sleep(0.01)
    assert [p["batch_size"] for p in job.result()["points"]] == [1, 2, 4, 8]
    assert any(desc and "timed iteration" in desc for desc in seen), seen


def test_api_lists_run_and_sweep(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/run", "/sweep"} <= set(endpoints)


def test_imagenet_weights_bring_their_own_architecture():
    """As in the Attributions tab: ImageNet weights run on their preset at their crop size."""
    from explorer.selection import Selection
    from explorer.shared.models import IMAGENET, WeightsChoice
    from explorer.run import tab as run_tab

    custom = Selection(resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2,
                                             stage_blocks=(1, 1), stem="cifar"), 32)
    weights = WeightsChoice(kind=IMAGENET, name="resnext101_32x8d.IMAGENET1K_V2")
    text = views.run_preview(custom, weights, "cpu", 1, "float32")
    assert "ResNeXt-101 (32x8d) (resnext101_32x8d) at 224×224" in text
    assert "the architecture of these ImageNet weights" in text
    assert "ResNeXt-" in views.run_preview(custom, WeightsChoice(), "cpu", 1, "float32")
    assert "at 32×32" in views.run_preview(custom, WeightsChoice(), "cpu", 1, "float32")


def _peak_memory_in_a_fresh_process(warmup: int) -> tuple[int, str, int]:
    """Run the measurement where no other thread allocates or frees.

    RSS is the whole process's: in the test process, threads left by earlier tests (app
    servers, the Train tab's estimate) free memory at any moment, and once one freed 100 MiB
    while the pass took 100 MiB, so the sampler saw +4 kB.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure_allocating_model, (warmup,))


def _measure_allocating_model(warmup: int) -> tuple[int, str, int]:
    result = runner.run(tiny_request(warmup=warmup, iterations=2),
                        cache=ModelCache(builder=lambda *args: AllocatingModel(100 * 2**20)))
    return result.peak_memory_bytes, result.memory_note, len(result.timings.seconds)


@pytest.mark.parametrize("warmup", [0, 2])
def test_cpu_peak_memory_is_sampled_with_or_without_warm_up(warmup):
    """With a warm-up, RSS is sampled during it only (the timed passes run without the
    sampling thread); without one, during the timed passes."""
    peak, note, timed_passes = _peak_memory_in_a_fresh_process(warmup)
    # Each pass holds 100 MiB of freshly written memory for 200 ms: the sampler must see it
    # (and not invent much more: the tiny input and the zeros output are a few kB).
    assert 90 * 2**20 <= peak <= 400 * 2**20
    expected = "the warm-up passes" if warmup else "the passes over"
    assert expected in note
    assert timed_passes == 2


class AllocatingModel(torch.nn.Module):
    """Holds `num_bytes` of written memory for 200 ms each pass: peak memory with a known
    answer (long enough for the 5 ms sampler to be scheduled on a loaded machine)."""

    def __init__(self, num_bytes: int) -> None:
        super().__init__()
        self.num_bytes = num_bytes

    def forward(self, x):
        block = torch.ones(self.num_bytes // 4)  # float32; written, so resident
        time.sleep(0.2)
        del block
        return torch.zeros(x.shape[0], 1000)


def test_a_wide_spread_of_timings_warns_that_the_device_was_busy():
    import dataclasses

    result = runner.run(tiny_request(iterations=2))
    steady = dataclasses.replace(result, timings=runner.Timings((0.010,) * 9 + (0.011,)))
    busy = dataclasses.replace(result, timings=runner.Timings(
        (0.010, 0.010, 0.011, 0.012, 0.013, 0.020, 0.030, 0.040, 0.050, 0.060)))
    assert views.spread_warning(steady) == ""
    ratio = busy.p90_ms / busy.p10_ms
    assert ratio >= views.SPREAD_WARNING_RATIO
    assert views.spread_warning(busy).startswith(f"p90 is {ratio:.1f}× p10: the device was busy")
    assert "the device was busy" in views.result_html(busy)
    assert "the device was busy" not in views.result_html(steady)
