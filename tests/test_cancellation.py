"""Cancel flags: running work sees its flag; work pressed before a Cancel and still waiting
is dropped, work pressed after it is not; a page without the click-time script is never
dropped; sessions are apart, and so are a session's features; one exception, the library's
`Stopped`, for work the person stopped."""

import threading
from types import SimpleNamespace

import pytest

from explorer.shared import cancellation
from explorer.shared.cancellation import CANCEL_FLAGS, CancelFlags, work_key
from resnext.explain import Stopped


def test_cancel_sets_only_the_running_sessions_flag():
    flags = CancelFlags()
    with flags.running("a") as flag_a, flags.running("b") as flag_b:
        assert flags.cancel("a", 1000.0) is True
        assert flag_a.is_set() and not flag_b.is_set()
    assert flags.cancel("a", 2000.0) is False  # nothing running now


def test_work_pressed_before_cancel_is_dropped_and_later_work_is_not():
    flags = CancelFlags()
    assert not flags.dropped("s", 1000.0)  # no Cancel yet
    flags.cancel("s", 1500.0)
    assert flags.dropped("s", 1000.0)
    assert flags.dropped("s", 1500.0)
    assert not flags.dropped("s", 1600.0)
    assert not flags.dropped("other", 1000.0)


def test_missing_or_odd_times_never_drop():
    flags = CancelFlags()
    flags.cancel("s", 1500.0)
    for value in (None, 0, 0.0, -5, True, "1000", float("nan")):
        assert not flags.dropped("s", value)
    flags.cancel("s", None)  # a Cancel without a time keeps the earlier one
    assert flags.dropped("s", 1000.0)


def test_a_fresh_run_clears_the_flag_and_busy_counts_nest():
    flags = CancelFlags()
    with flags.running("s") as flag:
        flags.cancel("s")
        assert flag.is_set()
    with flags.running("s") as flag:
        assert not flag.is_set()
        with flags.running("s"):
            pass
        assert flags.cancel("s") is True  # still busy with the outer work


def test_many_sessions_keep_memory_bounded():
    flags = CancelFlags(capacity=3)
    for index in range(10):
        flags.cancel(f"s{index}", 100.0)
    assert not flags.dropped("s0", 50.0)  # forgotten
    assert flags.dropped("s9", 50.0)


def test_cancel_from_another_thread_reaches_running_work():
    flags = CancelFlags()
    seen = threading.Event()
    with flags.running("s") as flag:
        threading.Thread(target=lambda: flags.cancel("s", 10.0)).start()
        seen.set() if flag.wait(5) else None
    assert seen.is_set()


def test_work_pressed_before_cancel_raises_stopped_and_later_work_runs():
    flags = CancelFlags()
    flags.cancel("s", 1500.0)
    with pytest.raises(Stopped):
        with flags.work("s", 1000.0):
            raise AssertionError("dropped work must not start")
    with flags.work("s", 1600.0) as flag:
        assert not flag.is_set()
        assert flags.cancel("s", 1700.0) is True  # it counts as running
        assert flag.is_set()
    with flags.work("s") as flag:  # no press time (an API call): never dropped
        assert not flag.is_set()


def test_the_page_wrapper_keeps_every_output_silently_on_stopped(monkeypatch):
    """Cancel has said it: the work's own end shows no second message, and no output
    changes; any other failure is still a warning."""
    import gradio as gr

    from explorer.errors import keep_state

    warnings = []
    monkeypatch.setattr(gr, "Warning", warnings.append)

    @keep_state
    def cancelled_work():
        raise Stopped("stopped")

    @keep_state
    def failing_work():
        raise ValueError("n_images must be at least 1")

    assert cancelled_work() == gr.skip() and warnings == []
    assert failing_work() == gr.skip() and warnings == ["n_images must be at least 1"]


def test_one_flag_mechanism_keyed_by_session_and_feature():
    """Attributions' Cancel and Evaluate's Stop share one `CancelFlags`; a page's Cancel of
    its attribution leaves its evaluation running, and another page's work alone."""
    page = SimpleNamespace(session_hash="page-1")
    assert work_key(page, "evaluate") == ("page-1", "evaluate")
    assert work_key(None, "attributions") == ("no-session", "attributions")
    with pytest.raises(ValueError, match="feature must be one of attributions, evaluate"):
        work_key(page, "train")
    flags = CancelFlags()
    with flags.running(work_key(page, "attributions")) as attributing, \
            flags.running(work_key(page, "evaluate")) as evaluating:
        assert flags.cancel(work_key(page, "attributions"), 10.0)
        assert attributing.is_set() and not evaluating.is_set()
    assert not flags.dropped(work_key(page, "evaluate"), 5.0)
    assert flags.dropped(work_key(page, "attributions"), 5.0)
    assert isinstance(CANCEL_FLAGS, CancelFlags)
    assert [name for name in vars(cancellation) if isinstance(getattr(cancellation, name),
                                                              CancelFlags)] == ["CANCEL_FLAGS"]
