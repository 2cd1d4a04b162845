"""An honest clock (issue 18, section 4): one recent rate, the time left from that same rate,
the estimate measured at the run's own batch, memory format and augmentation, and a note
when the machine is busy."""

import pytest
import torch

from resnext import ResNeXtConfig, data, train
from resnext.train import clock as clock_module
from resnext.train import engine, estimation
from resnext.train.__main__ import ProgressBar
from resnext.train.clock import RATE_WINDOW, SKIPPED_STEPS, Clock, busy_note

TINY = ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16, stage_blocks=(1, 1),
                     stem="cifar", num_classes=6)


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def fake_time(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(clock_module.time, "perf_counter", fake)
    return fake


def test_the_rate_leaves_out_each_epochs_first_steps(fake_time):
    # 10 steps of 32 images an epoch; the epoch's first two steps take 2 s (data loading,
    # allocation), the rest 0.1 s: the rate is 320 images/s, not an average dragged down.
    clock = Clock(images_per_epoch=320, test_images=64, steps_per_epoch=10, interval=0.5)
    clock.start_epoch()
    for step in range(10):
        fake_time.now += 2.0 if step < SKIPPED_STEPS else 0.1
        clock.step_done(32)
    assert clock.rate() == pytest.approx(320.0)
    # 15 steps (480 images) and 2 test passes left; no test measured yet: a test image
    # counts a third of a training image (forward only).
    assert clock.time_left(15, 2) == pytest.approx(480 / 320 + 2 * 64 / 3 / 320)
    clock.test_done(0.5)
    assert clock.time_left(15, 2) == pytest.approx(480 / 320 + 2 * 0.5)


def test_the_rate_is_the_recent_window_only(fake_time):
    clock = Clock(images_per_epoch=10_000, test_images=0, steps_per_epoch=1000, interval=0.5)
    clock.start_epoch()
    for _ in range(SKIPPED_STEPS + 50):  # a slow stretch (0.2 s a step) ...
        fake_time.now += 0.2
        clock.step_done(10)
    for _ in range(RATE_WINDOW):  # ... then the machine is free again (0.05 s a step)
        fake_time.now += 0.05
        clock.step_done(10)
    assert clock.rate() == pytest.approx(200.0)


def test_an_epoch_of_two_steps_still_has_a_rate(fake_time):
    clock = Clock(images_per_epoch=64, test_images=0, steps_per_epoch=2, interval=0.5)
    assert clock.rate() is None and clock.time_left(2, 1) is None
    clock.start_epoch()
    fake_time.now += 0.5
    clock.step_done(32)
    assert clock.rate() == pytest.approx(64.0)


def test_busy_means_more_load_than_cores():
    assert busy_note((9.2, 2)) == ("the machine is busy (load 9.2 on 2 cores): the time may "
                                   "stretch")
    assert busy_note((1.5, 2)) is None and busy_note(None) is None


def test_the_events_rate_and_time_left_agree(monkeypatch):
    """Every step event's time left is its own rate applied to the images left (plus test
    passes): one clock, so the line can never say two things."""
    images = data.shapes(n_train=192, n_test=32, image_size=16, seed=2)
    monkeypatch.setattr(engine, "PROGRESS_INTERVAL_S", 0.0)
    events = []
    torch.set_num_threads(1)
    train.fit(TINY, images, epochs=2, batch_size=32, on_progress=events.append)
    steps = [e for e in events if e["kind"] == "step" and e["eta_seconds"] is not None]
    assert len(steps) >= 6
    for event in steps:
        images_left = (event["steps_total"] - event["global_step"]) * 32
        training_part = images_left / event["images_per_second"]
        assert training_part <= event["eta_seconds"] + 1e-9
        tests_left = event["epochs"] - event["epoch"] + 1
        assert event["eta_seconds"] - training_part <= tests_left * 5.0  # the test passes


def test_the_cli_bar_shows_the_engines_rate_and_time_left_together():
    event = {"kind": "step", "epoch": 2, "epochs": 3, "loss": 1.234, "images_per_second": 412.4,
             "eta_seconds": 150.0, "global_step": 10, "steps_total": 30}
    postfix = ProgressBar.postfix(event)
    assert postfix["img/s"] == "412" and postfix["left"] == "2 min"
    assert "{rate" not in ProgressBar.FORMAT and "remaining" not in ProgressBar.FORMAT


def test_the_page_line_says_the_rate_and_the_time_left_at_it(monkeypatch):
    from explorer.train import views

    monkeypatch.setattr(clock_module, "machine_load", lambda: (9.0, 2))
    status = {"run": {"state": "running", "run_id": "r", "network": "n", "dataset": "d",
                      "epochs": 3, "device": "cpu"},
              "progress": {"epoch": 1, "epochs": 3, "global_step": 5, "steps_total": 30,
                           "loss": 1.5, "lr": 0.1, "images_per_second": 74.2,
                           "eta_seconds": 120.0}}
    text = views.progress_html(status)
    assert "74 images/s now · about 2 min left at that rate" in text
    assert "the machine is busy (load 9.0 on 2 cores): the time may stretch" in text
    status["run"]["device"] = "cuda"  # on a GPU other processes barely matter
    assert "busy" not in views.progress_html(status)


def test_the_estimate_measures_at_the_runs_own_batch_and_says_when_busy(monkeypatch):
    images = data.shapes(n_train=200, n_test=40, image_size=16, seed=2)
    monkeypatch.setattr(estimation, "machine_load", lambda: (9.0, 2))
    calls = []
    real_step = engine._step

    def spy(plan, state, indices, reporter):
        conv = next(p for p in state.model.parameters() if p.dim() == 4)
        calls.append((len(indices), plan.channels_last, len(plan.augment),
                      conv.is_contiguous(memory_format=torch.channels_last)))
        return real_step(plan, state, indices, reporter)

    monkeypatch.setattr(engine, "_step", spy)
    guess = train.estimate(TINY, images, epochs=2, batch_size=48, channels_last=True)
    assert guess.measured_batch == 48 and guess.steps == 2 * 5  # 200 = 4 x 48 + 8
    assert calls and all(c[0] == 48 and c[1] and c[3] for c in calls)
    # the quick recipe's flips and crops run in the measured steps, as in the run
    assert all(c[2] == 2 for c in calls)  # RandomCrop, RandomHorizontalFlip
    assert guess.busy and "the machine is busy (load 9.0 on 2 cores)" in guess.busy_note
    assert guess.compile is not None and not guess.compile.measured  # modelled verdict
    assert "modelled" in guess.compile.phrase
