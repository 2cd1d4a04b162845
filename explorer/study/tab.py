"""Study tab: one knob of the network in hand × seeds, each (value, seed) an ordinary training
run scored by the attribution metrics; points with 95 % intervals, live, from every worker
that shares the study's storage.

Layout and wiring only: the spec, Table 2 and the estimate are in `requests`; the worker
processes and what the library reports in `workers`; the tables and charts in `views`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from resnext.train import limits

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors
from ..selection import Selection
from ..shared.devices import initial_choices
from ..shared.weights_choice import run_weights
from . import requests as service
from . import views
from .workers import StudyWorkers

POLL_SECONDS = 2.0  # the live table: one read of the storage per tick
# An estimate measures a few training steps: one at a time, never beside a forward timing.
ESTIMATE_QUEUE = {"concurrency_id": "forward", "concurrency_limit": 1}
QUIET = dict(api_visibility="private", show_progress="hidden")
STALE = ("*The settings changed since the last estimate: press **Check and estimate** for "
         "this study's.*")
INTRO = (
    "Does cardinality help *this* network on *this* data, and does it change where the "
    "network looks? A study turns one knob of the network from the **Architecture** tab over "
    "a few values, trains each value with several seeds (each an ordinary run, listed in the "
    "**Train** and **Evaluate** tabs), scores the attribution methods on each, and reports "
    "every point as a mean with its 95 % interval. **Table 2** fills the paper's "
    "cardinalities at equal complexity for your network. Workers are processes of their own; "
    "workers on other machines that share the study's storage "
    "(`python -m resnext.study work NAME --storage URL`) fill the same table.")


def _spec(ctx: TabContext, selection: Selection, values: list[Any]):
    *controls, _devices = values
    return service.make_spec(controls[0], selection, *controls[1:],
                             data_dir=ctx.options.data_dir)


def _status(workers: StudyWorkers, name: str) -> dict[str, Any]:
    """Everything the live part of the page shows of study `name`."""
    import resnext.study

    from ..shared.downloads import write_download

    result = workers.report(name)
    # Followed while something can change it: a local worker, or a trial running anywhere
    # (a worker elsewhere on the storage). A study nobody works on is not polled.
    live = result["counts"]["RUNNING"] > 0 or any(w["alive"] for w in result["workers"])
    return {"summary": views.summary_html(result), "trials": views.trial_rows(result),
            "points": views.point_rows(result), "accuracy": views.accuracy_figure(result),
            "metrics": views.metrics_figure(result), "macs": views.macs_figure(result),
            "csv": str(write_download(resnext.study.to_csv(result), f"study-{name}", ".csv")),
            "timer": gr.Timer(active=live)}


class Handlers:
    """The tab's page handlers; each answers by name."""

    def __init__(self, ctx: TabContext, workers: StudyWorkers) -> None:
        self.ctx, self.workers = ctx, workers

    @keep_state
    def table2(self, selection: Selection, data: str, image_size: Any) -> dict[str, Any]:
        values, note = service.table2(selection, data, image_size)
        return {"knob": "cardinality", "values": values, "keep": True, "note": note}

    @keep_state
    def check(self, selection: Selection, *values: Any) -> dict[str, Any]:
        spec = _spec(self.ctx, selection, list(values))
        found = service.estimate(spec, service.check_devices(values[-1]))
        return {"plan": service.plan_markdown(spec), "estimate": found["text"]}

    def _choices(self, value: str | None) -> Any:
        return gr.update(choices=views.study_choices(self.workers.studies()), value=value)

    @keep_state
    def start(self, request: gr.Request, selection: Selection, *values: Any) -> dict[str, Any]:
        spec = _spec(self.ctx, selection, list(values))
        devices = service.check_devices(values[-1])
        made = self.workers.create(spec, devices, self.ctx.user(request))
        gr.Info(f"Study {made['name']}: {made['trials']} trials queued; "
                f"{len(made['workers'])} worker(s) started.")
        return {"picker": self._choices(spec.name), "followed": spec.name,
                **_status(self.workers, spec.name)}

    @keep_state
    def follow(self, name: str | None) -> dict[str, Any]:
        if not name:
            return {"followed": None, "timer": gr.Timer(active=False)}
        return {"followed": name, "runs": gr.update(choices=[], value=None),
                **_status(self.workers, name)}

    @keep_state
    def poll(self, name: str | None) -> dict[str, Any]:
        if not name:
            return {"timer": gr.Timer(active=False)}
        return _status(self.workers, name)

    @keep_state
    def refresh(self, name: str | None) -> dict[str, Any]:
        return {"picker": self._choices(name)}

    @keep_state
    def load(self, request: gr.Request) -> dict[str, Any]:
        """Page (re)load: list the storage's studies; follow one this user's workers run."""
        user = self.ctx.user(request)
        listed = self.workers.studies()
        mine = [s["name"] for s in listed if s.get("owner") == user
                and any(w["alive"] for w in self.workers.workers(s["name"]))]
        name = mine[-1] if mine else None
        answer = {"picker": gr.update(choices=views.study_choices(listed), value=name),
                  "followed": name}
        return {**answer, **_status(self.workers, name)} if name else answer

    @keep_state
    def more_workers(self, name: str | None, devices: Any, request: gr.Request
                     ) -> dict[str, Any]:
        if not name:
            raise ValueError("study: choose a study first")
        started = self.workers.start(name, service.check_devices(devices),
                                     self.ctx.user(request))
        gr.Info(f"Started {len(started)} worker(s) for study {name}.")
        return _status(self.workers, name)

    @keep_state
    def stop(self, name: str | None, request: gr.Request) -> dict[str, Any]:
        if not name:
            raise ValueError("study: choose a study first")
        gr.Info(self.workers.stop(name, self.ctx.user(request)))
        return _status(self.workers, name)

    @keep_state
    def pick_point(self, name: str | None, event: gr.SelectData) -> dict[str, Any]:
        if not name:
            return gr.skip()
        index = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        found = views.point_runs(self.workers.report(name), int(index))
        return {"runs": gr.update(choices=found, value=found[0] if found else None)}

    @keep_state
    def use_run(self, run_id: str | None) -> dict[str, Any]:
        if not run_id:
            raise ValueError("run: click a point in the points table, then choose one of its runs")
        weights, selection = run_weights(self.ctx.training.run_dir(run_id))
        gr.Info(f"Using {run_id}: the Architecture tab shows its network, the Run and "
                f"Attributions tabs its weights; the Evaluate tab lists it.")
        return {"selection_request": selection, "weights": weights}


# API (named endpoints; errors reach the caller) -------------------------------------------

def make_api(ctx: TabContext, workers: StudyWorkers) -> dict[str, Any]:
    def spec_of(name: str, config_json: str, knob: str, values: str, keep_complexity: bool,
                seeds: str, data: str, image_size: float, train_size: float,
                test_size: float, epochs: float, batch_size: float, methods: list[str],
                n_images: float):
        return service.make_spec(name, Selection.from_json(config_json), knob, values,
                                 keep_complexity, seeds, data, image_size, train_size,
                                 test_size, epochs, batch_size, methods, n_images,
                                 ctx.options.data_dir)

    @user_errors
    def study_estimate(config_json: str, knob: str, values: str, keep_complexity: bool,
                       seeds: str, data: str, image_size: float, train_size: float,
                       test_size: float, epochs: float, batch_size: float,
                       methods: list[str], n_images: float, devices: list[str]) -> dict:
        """/study_estimate: the plan (every point's network and cost) and the estimate of
        the whole study (trials × per-run estimate, over one worker per device)."""
        spec = spec_of("estimate", config_json, knob, values, keep_complexity, seeds, data,
                       image_size, train_size, test_size, epochs, batch_size, methods,
                       n_images)
        import resnext.study

        return {"plan": resnext.study.plan(spec),
                "estimate": service.estimate(spec, service.check_devices(devices))}

    @user_errors
    def study_create(name: str, config_json: str, knob: str, values: str,
                     keep_complexity: bool, seeds: str, data: str, image_size: float,
                     train_size: float, test_size: float, epochs: float, batch_size: float,
                     methods: list[str], n_images: float, devices: list[str],
                     request: gr.Request = None) -> dict:
        """/study_create: write the study (owned by the caller) and start one worker per
        device; its name, trials, storage and workers."""
        spec = spec_of(name, config_json, knob, values, keep_complexity, seeds, data,
                       image_size, train_size, test_size, epochs, batch_size, methods,
                       n_images)
        return workers.create(spec, service.check_devices(devices), ctx.user(request))

    @user_errors
    def study_status(name: str) -> dict:
        """/study_status: `python -m resnext.study show --json` (points with intervals,
        trials, steps), this server's workers, and the CSV text."""
        import resnext.study

        result = workers.report(name)
        return {**result, "csv": resnext.study.to_csv(result)}

    @user_errors
    def study_stop(name: str, request: gr.Request = None) -> str:
        """/study_stop: stop this server's workers of a study (owner or admin only); each
        running trial goes back to the queue."""
        return workers.stop(name, ctx.user(request))

    @user_errors
    def studies() -> list:
        """/studies: every study in the storage, wherever it was made."""
        return workers.studies()

    return {"study_estimate": study_estimate, "study_create": study_create,
            "study_status": study_status, "study_stop": study_stop, "studies": studies}


# Layout -----------------------------------------------------------------------------------

def _number(value: int, bounds: tuple[int, int], **kwargs: Any) -> Any:
    return ui.Number(value, minimum=bounds[0], maximum=bounds[1], **kwargs)


class Settings:
    def __init__(self, ctx: TabContext) -> None:
        d = service.DEFAULTS
        self.name = gr.Textbox("table2", label="Study name", info="letters, digits, . _ -")
        self.knob = ui.Dropdown(service.knob_choices(), value=d["knob"], label="Knob")
        with gr.Row():
            self.values = gr.Textbox(d["values"], label="Values", scale=2,
                                     info="e.g. 1,2,4,8 (blocks: 1,1,1;2,2,2)")
            self.keep = gr.Checkbox(False, label="Keep complexity (d solved per C)", scale=1)
        self.table2 = gr.Button("Table 2: cardinality at equal complexity", size="sm",
                                elem_id="study-table2")
        self.note = gr.Markdown(elem_id="study-table2-note")
        self.seeds = gr.Textbox(d["seeds"], label="Seeds", info="3 or more for honest intervals")
        self.data = ui.Dropdown(service.dataset_choices(), value=d["data"], label="Dataset")
        with gr.Row():
            self.image_size = ui.Slider(*limits.IMAGE_SIZE_RANGE, value=d["image_size"],
                                        step=1, label="Image size (px)")
            self.epochs = _number(d["epochs"], limits.EPOCHS_RANGE, label="Epochs")
        with gr.Row():
            self.train_size = _number(d["train_size"], limits.TRAIN_IMAGES_RANGE,
                                      label="Training images")
            self.test_size = _number(d["test_size"], limits.TEST_IMAGES_RANGE,
                                     label="Test images")
        with gr.Row():
            self.batch_size = _number(d["batch_size"], limits.BATCH_RANGE, label="Batch size")
            self.n_images = _number(d["n_images"], service.N_IMAGES, label="Images scored")
        self.methods = gr.CheckboxGroup(service.method_choices(), value=d["methods"],
                                        label="Attribution methods scored",
                                        elem_id="study-methods")
        self.devices = gr.CheckboxGroup(initial_choices(ctx.options.default_device),
                                        value=[ctx.options.default_device],
                                        label="Devices (one local worker each)")
        with gr.Row():
            self.check = gr.Button("Check and estimate")
            self.start = gr.Button("Create and start", variant="primary")
        self.estimate = gr.Markdown(elem_id="study-estimate")
        self.plan = gr.Markdown(elem_id="study-plan")

    @property
    def values_in_order(self) -> list[Any]:
        """`service.make_spec` argument order after the Selection, then the devices."""
        return [self.name, self.knob, self.values, self.keep, self.seeds, self.data,
                self.image_size, self.train_size, self.test_size, self.epochs, self.batch_size,
                self.methods, self.n_images, self.devices]


class Live:
    def __init__(self) -> None:
        with gr.Row(equal_height=False):
            self.picker = ui.Dropdown([], value=None, label="Study (every study in the "
                                      "storage)", scale=4, allow_custom_value=False)
            self.refresh = gr.Button("Refresh the list", size="sm", scale=1)
        self.summary = gr.HTML('<div class="rx-note">No study followed yet.</div>',
                               elem_id="study-summary")
        with gr.Row():
            self.more = gr.Button("Start workers on the chosen devices", size="sm")
            self.stop = gr.Button("Stop its workers", variant="stop", size="sm")
        self.points = gr.Dataframe(headers=views.POINT_COLUMNS, interactive=False, wrap=True,
                                   column_widths=views.POINT_COLUMN_WIDTHS,
                                   label="Points (click one for its runs)",
                                   elem_id="study-points", elem_classes=["rx-table"])
        with gr.Row(equal_height=False):
            self.runs = ui.Dropdown([], value=None, label="Its runs", scale=3)
            self.use = gr.Button("Use this run", scale=1)
        self.accuracy = gr.Plot(label="Accuracy vs the knob", elem_id="study-accuracy")
        self.macs = gr.Plot(label="Accuracy vs MACs", elem_id="study-macs")
        self.trials = gr.Dataframe(headers=views.TRIAL_COLUMNS, interactive=False, wrap=True,
                                   label="Trials (live)", elem_id="study-trials",
                                   elem_classes=["rx-table"])
        self.csv = gr.File(label="Points as CSV", elem_id="study-csv")
        self.followed = gr.State(None)
        self.timer = gr.Timer(POLL_SECONDS, active=False)


def build(ctx: TabContext) -> None:
    workers = StudyWorkers(ctx.options.runs_dir, ctx.options.study_storage,
                           ctx.options.admin_names)
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
        with gr.Column(scale=1, min_width=320):
            settings = Settings(ctx)
        with gr.Column(scale=2, min_width=480):
            live = Live()
    metrics = gr.Plot(label="Attribution metrics vs the knob", elem_id="study-metrics")
    _wire(ctx, workers, settings, live, metrics)


# Wiring -----------------------------------------------------------------------------------

def _wire(ctx: TabContext, workers: StudyWorkers, s: Settings, live: Live, metrics: Any
          ) -> None:
    h = Handlers(ctx, workers)
    api = make_api(ctx, workers)
    for name, fn in api.items():
        ui.api(fn, name)
    inputs = [ctx.selection, *s.values_in_order]
    check = dict(**ui.by_name(h.check, {"plan": s.plan, "estimate": s.estimate}),
                 inputs=inputs, **QUIET, **ESTIMATE_QUEUE)
    s.table2.click(**ui.by_name(h.table2, {"knob": s.knob, "values": s.values, "keep": s.keep,
                                           "note": s.note}),
                   inputs=[ctx.selection, s.data, s.image_size], **QUIET).then(**check)
    s.check.click(**check)
    # An estimate is for the settings it was made with: a change says so (measuring again on
    # every keystroke would cost seconds of training steps each time).
    for control in [ctx.selection, *s.values_in_order[1:]]:
        getattr(control, "change" if control is ctx.selection else "input")(
            lambda: STALE, None, s.estimate, queue=False, **QUIET)
    status = {"summary": live.summary, "trials": live.trials, "points": live.points,
              "accuracy": live.accuracy, "metrics": metrics, "macs": live.macs,
              "csv": live.csv, "timer": live.timer, "picker": live.picker,
              "followed": live.followed, "runs": live.runs}
    s.start.click(**ui.by_name(h.start, status), inputs=inputs, **QUIET)
    live.picker.select(**ui.by_name(h.follow, status), inputs=live.picker, **QUIET)
    live.timer.tick(**ui.by_name(h.poll, status), inputs=live.followed, **QUIET)
    live.refresh.click(**ui.by_name(h.refresh, status), inputs=live.followed, **QUIET)
    ctx.demo.load(**ui.by_name(h.load, status), inputs=None, **QUIET)
    live.more.click(**ui.by_name(h.more_workers, status), inputs=[live.followed, s.devices],
                    **QUIET)
    live.stop.click(**ui.by_name(h.stop, status), inputs=live.followed, **QUIET)
    live.points.select(**ui.by_name(h.pick_point, status), inputs=live.followed, **QUIET)
    live.use.click(**ui.by_name(h.use_run, {"selection_request": ctx.selection_request,
                                            "weights": ctx.weights}),
                   inputs=live.runs, **QUIET)
