"""Train tab: train the network of the Architecture tab on data whose truth is known, watch
it learn, keep the run, and use it in the Run and Attributions tabs.

Layout and wiring only: the request, preview and estimate are in `requests`; the
child processes, queue and run folders in `jobs`; the charts in `views`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from resnext.train import limits

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors
from ..selection import Selection
from . import requests as service
from . import views
from ..shared.devices import initial_choices
from .jobs import RUN_COLUMNS, TrainingManager, run_row
from ..shared.weights_choice import run_weights

POLL_SECONDS = 1.0
# Estimates measure a few training steps: one at a time, never beside a forward-pass timing.
ESTIMATE_QUEUE = {"concurrency_id": "forward", "concurrency_limit": 1}
INTRO = ("Train the network you built in the **Architecture** tab. The training runs as its "
         "own process on the server: closing or reloading this page does not stop it, and "
         "its run (config, metrics, weights) is kept in the runs directory. On *shapes* the "
         "truth is known, every object pixel, so what a trained network looks at can be "
         "measured in the Attributions tab.")


# Handlers ---------------------------------------------------------------------------------

def _request(ctx: TabContext, selection: Selection, values: list[Any]) -> service.TrainRequest:
    *controls, compile_, download = values
    return service.make_request(selection, *controls, data_dir=ctx.options.data_dir,
                                download=download, compile=compile_)


def _runs_table(manager: TrainingManager) -> dict[str, Any]:
    """The runs table and its line (count, size on disk)."""
    records = manager.runs()
    return {"runs_table": [run_row(record) for record in records],
            "runs_total": views.runs_summary(records)}


def _run_choices(manager: TrainingManager) -> list[str]:
    return manager.usable_runs()


def _nothing_picked() -> dict[str, Any]:
    """No run picked in the table: its Delete, Resume and confirmation hidden."""
    return {"picked": None, "delete": gr.update(visible=False),
            "resume": gr.update(visible=False), "confirm_box": gr.update(visible=False)}


class Handlers:
    """The tab's page handlers, on the app's training manager; each answers by name."""

    def __init__(self, ctx: TabContext) -> None:
        self.ctx = ctx
        self.manager: TrainingManager = ctx.training

    @keep_state
    def before_start(self, selection: Selection, *values: Any) -> dict[str, Any]:
        request = _request(self.ctx, selection, list(values))
        forecast = service.forecast(request, self.ctx.options.data_dir)
        smaller = forecast.smaller
        label = f"Use the smaller variant ({smaller.config.name})" if smaller else None
        return {"preview": service.preview(request, self.ctx.options.data_dir),
                "estimate": forecast.text, "smaller": smaller,
                "use_smaller": gr.update(visible=smaller is not None,
                                         value=label or "Use the smaller variant")}

    @staticmethod
    def use_smaller(smaller: Selection | None) -> Any:
        return smaller if smaller is not None else gr.skip()

    @staticmethod
    def recipe_note(recipe: str) -> Any:
        return gr.update(info=service.learning_rate_note(recipe))

    @keep_state
    def start(self, request: gr.Request, selection: Selection, *values: Any) -> dict[str, Any]:
        user = self.ctx.user(request)
        run_id = self.manager.start(_request(self.ctx, selection, list(values)), user)
        status = self.manager.status(run_id)
        return {"followed": run_id, "progress": views.progress_html(status),
                "curves": views.curves_figure(status), "timer": gr.Timer(active=True),
                **_runs_table(self.manager)}

    @keep_state
    def poll(self, run_id: str | None) -> dict[str, Any]:
        if not run_id:
            return {"timer": gr.Timer(active=False)}
        status = self.manager.status(run_id)
        live = status["run"]["state"] in ("queued", "running")
        answer = {"progress": views.progress_html(status), "curves": views.curves_figure(status),
                  "timer": gr.Timer(active=live), **_runs_table(self.manager)}
        if not live:
            answer["choice"] = gr.update(choices=_run_choices(self.manager),
                                         value=run_id if status["history"] else None)
        return answer

    @keep_state
    def stop(self, run_id: str | None, request: gr.Request) -> None:
        if not run_id:
            raise ValueError("no run is being followed on this page: start one first")
        gr.Info(self.manager.stop(run_id, self.ctx.user(request)))

    def _listing(self) -> dict[str, Any]:
        return {**_runs_table(self.manager),
                "choice": gr.update(choices=_run_choices(self.manager))}

    @keep_state
    def reattach(self, request: gr.Request) -> dict[str, Any]:
        """Page (re)load: follow this user's newest queued or running run, if any."""
        user = self.ctx.user(request)
        run_id = self.manager.active_run(user)
        who = views.signed_in(user, user in self.manager.admins,
                              self.ctx.options.accounts is not None)
        return {"followed": run_id, "timer": gr.Timer(active=run_id is not None),
                "who": who, **self._listing()}

    @keep_state
    def refresh(self) -> dict[str, Any]:
        return self._listing()

    @keep_state
    def show_run(self, run_id: str | None) -> dict[str, Any]:
        if not run_id:
            return gr.skip()
        status = self.manager.status(run_id)
        report = views.run_report(self.manager.run_dir(run_id))
        return {"run_curves": views.curves_figure(status),
                "confusion": views.confusion_figure(report),
                "per_class": views.per_class_rows(report),
                "gallery": views.prediction_gallery(report)}

    @keep_state
    def use_run(self, run_id: str | None) -> dict[str, Any]:
        if not run_id:
            raise ValueError("choose a finished run first")
        weights, selection = run_weights(self.manager.run_dir(run_id))
        gr.Info(f"Using {run_id}: the Architecture tab shows its network, the Run and "
                f"Attributions tabs its weights and its dataset's classes and test images.")
        return {"selection_request": selection, "weights": weights}

    # Deleting: a row clicked, then Delete, then a confirmation naming the run and its size.

    @keep_state
    def pick(self, event: gr.SelectData) -> dict[str, Any]:
        run_id = (event.row_value or [None])[0]
        record = self.manager.record(run_id) if run_id else None
        if record is None:
            return _nothing_picked()
        return {"picked": run_id, "delete": gr.update(visible=True, value=f"Delete {run_id}…"),
                "resume": gr.update(visible=record.resumable, value=f"Resume {run_id}"),
                "confirm_box": gr.update(visible=False)}

    @keep_state
    def resume(self, run_id: str | None, request: gr.Request) -> dict[str, Any]:
        """Queue the picked run's continuation and follow it on this page."""
        if not run_id:
            raise ValueError("click a stopped, interrupted or failed run in the runs table")
        gr.Info(self.manager.resume(run_id, self.ctx.user(request)))
        status = self.manager.status(run_id)
        return {"followed": run_id, "progress": views.progress_html(status),
                "curves": views.curves_figure(status), "timer": gr.Timer(active=True),
                "resume": gr.update(visible=False), **_runs_table(self.manager)}

    @keep_state
    def ask_delete(self, run_id: str | None, request: gr.Request) -> dict[str, Any]:
        if not run_id:
            raise ValueError("click a run in the runs table first")
        self.manager.authorize(run_id, self.ctx.user(request), "delete")
        record = self.manager.record(run_id)
        if record is None:
            raise ValueError(f"{run_id} holds no run")
        question, label = views.delete_prompt(record)
        return {"confirm_box": gr.update(visible=True), "confirm_text": question,
                "confirm": gr.update(value=label)}

    @keep_state
    def confirm_delete(self, run_id: str | None, request: gr.Request) -> dict[str, Any]:
        if not run_id:
            raise ValueError("click a run in the runs table first")
        gr.Info(self.manager.delete(run_id, self.ctx.user(request)))
        return {**_nothing_picked(), **self._listing()}

    @staticmethod
    def cancel_delete() -> dict[str, Any]:
        return {"confirm_box": gr.update(visible=False)}


# API (named endpoints; errors reach the caller) -------------------------------------------
# The values arrive as sent (gr.api does no preprocessing): `service.make_request` and the
# manager check each one under its name.

def make_api(ctx: TabContext) -> dict[str, Any]:
    manager: TrainingManager = ctx.training

    @user_errors
    def train_start(config_json: str, data: str, image_size: float, train_size: float,
                    test_size: float, epochs: float, batch_size: float, recipe: str,
                    lr: float | None, seed: float, device: str, compile: bool = False,
                    request: gr.Request = None) -> dict:
        """/train_start: queue a training of a config (JSON) on a dataset; its run id."""
        user = ctx.user(request)
        asked = service.make_request(Selection.from_json(config_json), data, image_size,
                                     train_size, test_size, epochs, batch_size, recipe, lr,
                                     seed, device, ctx.options.data_dir, compile=compile)
        run_id = manager.start(asked, user)
        return {"run_id": run_id, "queue_position": manager.queue_position(run_id),
                "request": asked.to_dict()}

    @user_errors
    def train_status(run_id: str) -> dict:
        """/train_status: state, progress, epoch metrics and live step curve of a run."""
        return manager.status(run_id)

    @user_errors
    def train_stop(run_id: str, request: gr.Request = None) -> str:
        """/train_stop: stop a run now (it keeps its last whole epoch); its owner or an
        admin only."""
        return manager.stop(run_id, ctx.user(request))

    @user_errors
    def train_resume(run_id: str, request: gr.Request = None) -> dict:
        """/train_resume: continue a stopped, interrupted or failed run from its last
        finished epoch (queued like a start, on its device); its owner or an admin only."""
        message = manager.resume(run_id, ctx.user(request))
        return {"run_id": run_id, "queue_position": manager.queue_position(run_id),
                "message": message}

    @user_errors
    def delete_run(run_id: str, request: gr.Request = None) -> str:
        """/delete_run: delete a run that is not running (its folder in the runs
        directory); its owner or an admin only."""
        return manager.delete(run_id, ctx.user(request))

    @user_errors
    def runs() -> list:
        """/runs: every run in the runs directory (and queued ones)."""
        return [record.to_dict() for record in manager.runs()]

    @user_errors
    def use_run(run_id: str) -> dict[str, Any]:
        """/use_run: this session's network and weights become the run's."""
        weights, selection = run_weights(manager.run_dir(run_id))
        record = manager.record(run_id)
        return {"selection": selection, "weights": weights,
                "json": {"run": record.to_dict() if record else None,
                         "config": selection.config.to_dict(),
                         "image_size": selection.image_size, "weights": weights.label}}

    return {name: value for name, value in locals().items() if callable(value)}


# Layout -----------------------------------------------------------------------------------

def _number(value: int, bounds: tuple[int, int], **kwargs: Any) -> Any:
    """A whole-number box bounded by one of training's limits."""
    return ui.Number(value, minimum=bounds[0], maximum=bounds[1], **kwargs)


class Settings:
    def __init__(self, ctx: TabContext) -> None:
        d = service.DEFAULTS
        self.data = ui.Dropdown(service.dataset_choices(ctx.options.data_dir), value=d["data"],
                                label="Dataset", info="image folders: class folders inside "
                                                      "the data directory")
        self.download = gr.Checkbox(False, label="Download CIFAR if missing (needs internet)",
                                    visible=False)
        with gr.Row():
            self.image_size = ui.Slider(*limits.IMAGE_SIZE_RANGE, value=d["image_size"], step=1,
                                        label="Image size (px)", info="CIFAR is 32×32")
            self.epochs = _number(d["epochs"], limits.EPOCHS_RANGE, label="Epochs")
        with gr.Row():
            self.train_size = _number(d["train_size"], limits.TRAIN_IMAGES_RANGE,
                                      label="Training images", info="shapes: generated; "
                                      "others: the first N")
            self.test_size = _number(d["test_size"], limits.TEST_IMAGES_RANGE,
                                     label="Test images")
        with gr.Row():
            self.batch_size = _number(d["batch_size"], limits.BATCH_RANGE, label="Batch size")
            self.recipe = ui.Radio(["quick", "seed"], value=d["recipe"], label="Recipe",
                                   info="quick: one-cycle for short runs; seed: the blog's SGD "
                                        "schedule")
        with gr.Row():
            self.lr = gr.Textbox("", label="Learning rate", info="empty: the recipe's own")
            self.seed = _number(d["seed"], limits.SEED_RANGE, label="Seed")
        self.device = ui.Dropdown(initial_choices(ctx.options.default_device),
                                  value=ctx.options.default_device, label="Device")
        self.compile = gr.Checkbox(False, label="Compile (torch.compile)",
                                   info="faster steps after a compile; the estimate measures "
                                        "whether it pays")
        with gr.Row():
            self.start = gr.Button("Start training", variant="primary")
            self.stop = gr.Button("Stop", variant="stop")

    @property
    def values(self) -> list[Any]:
        """`service.make_request` argument order, after the Selection."""
        return [self.data, self.image_size, self.train_size, self.test_size, self.epochs,
                self.batch_size, self.recipe, self.lr, self.seed, self.device, self.compile,
                self.download]


class Live:
    def __init__(self) -> None:
        self.estimate = gr.Markdown()
        self.smaller = gr.State(None)
        self.use_smaller = gr.Button("Use the smaller variant", visible=False, size="sm")
        self.preview = gr.Gallery(label="Training images (object outlined)", columns=6,
                                  height=260, object_fit="contain", allow_preview=False,
                                  elem_id="train-preview")
        self.progress = gr.HTML('<div class="rx-note">No training followed yet.</div>',
                                elem_id="train-progress")
        self.curves = gr.Plot(label="Learning curves", elem_id="train-curves")
        self.followed = gr.State(None)  # run id this page follows
        self.timer = gr.Timer(POLL_SECONDS, active=False)


class Runs:
    def __init__(self) -> None:
        gr.Markdown("### Runs (the runs directory: kept across restarts)")
        self.who = gr.HTML("", elem_id="runs-who")
        with gr.Row():
            self.table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True,
                                      elem_id="runs-table", elem_classes=["rx-table"])
        with gr.Row(equal_height=True):
            self.total = gr.HTML("", elem_id="runs-total")
            self.picked = gr.State(None)  # the run id of the row clicked
            self.resume = gr.Button("Resume", size="sm", visible=False, elem_id="runs-resume",
                                    scale=0, min_width=260)
            self.delete = gr.Button("Delete…", variant="stop", size="sm", visible=False,
                                    elem_id="runs-delete", scale=0, min_width=260)
        self._confirmation()
        with gr.Row(equal_height=False):
            self.choice = ui.Dropdown([], value=None, label="Run", scale=3, min_width=240,
                                      allow_custom_value=False)
            with gr.Column(scale=1, min_width=160):
                self.use = gr.Button("Use this run", variant="primary")
                self.refresh = gr.Button("Refresh the table", size="sm")
        with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
            with gr.Column(scale=1, min_width=320):
                self.curves = gr.Plot(label="Its learning curves")
            with gr.Column(scale=1, min_width=320):
                self.confusion = gr.Plot(label="Confusion matrix", elem_id="run-confusion")
        self.per_class = gr.Dataframe(headers=["class", "test images", "accuracy"],
                                      interactive=False, label="Per-class accuracy",
                                      elem_classes=["rx-table"])
        self.gallery = gr.Gallery(label="Test images: true → predicted (mistakes first)",
                                  columns=8, height=330, object_fit="contain",
                                  allow_preview=False)

    def _confirmation(self) -> None:
        """A row clicked offers Delete; Delete asks here, naming the run and its size."""
        with gr.Group(visible=False) as self.confirm_box:
            self.confirm_text = gr.HTML("", elem_id="runs-confirm")
            with gr.Row():
                self.confirm = gr.Button("Confirm: delete", variant="stop", size="sm")
                self.cancel = gr.Button("Cancel", size="sm")


def build(ctx: TabContext, tab: Any) -> None:
    """Lay out the tab; `tab` (its gr.Tab) refreshes the preview and estimate when opened."""
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
        with gr.Column(scale=1, min_width=300):
            settings = Settings(ctx)
        with gr.Column(scale=2, min_width=480):
            live = Live()
    runs = Runs()
    _wire(ctx, tab, settings, live, runs)


# Wiring -----------------------------------------------------------------------------------

def _wire(ctx: TabContext, tab: Any, s: Settings, live: Live, runs: Runs) -> None:
    h = Handlers(ctx)
    _api_endpoints(ctx)
    quiet = dict(api_visibility="private", show_progress="hidden")
    before = dict(**ui.by_name(h.before_start, {
        "preview": live.preview, "estimate": live.estimate, "smaller": live.smaller,
        "use_smaller": live.use_smaller}), inputs=[ctx.selection, *s.values],
        trigger_mode="always_last", **quiet, **ESTIMATE_QUEUE)
    # Refreshed when the tab is opened (the network may have changed meanwhile) and when a
    # setting changes here: never on every Architecture slider move.
    tab.select(**before)
    tab.select(h.recipe_note, s.recipe, s.lr, **quiet)
    for control in (s.data, s.image_size, s.recipe, s.device, s.compile):
        control.input(**before)
    for number in (s.epochs, s.train_size, s.test_size, s.batch_size, s.seed, s.lr):
        number.submit(**before)
        number.blur(**before)
    s.recipe.input(h.recipe_note, s.recipe, s.lr, **quiet)
    s.data.select(lambda data: gr.update(visible=service.downloadable(data)), s.data,
                  s.download, **quiet)
    live.use_smaller.click(h.use_smaller, live.smaller, ctx.selection_request, **quiet).then(
        **{**before, "inputs": [live.smaller, *s.values]})
    _wire_runs(ctx, h, s, live, runs, quiet)


def _wire_runs(ctx: TabContext, h: Handlers, s: Settings, live: Live, runs: Runs,
               quiet: dict[str, Any]) -> None:
    """Starting, following and stopping runs; the runs table and what a chosen run shows."""
    outputs = {"followed": live.followed, "progress": live.progress, "curves": live.curves,
               "timer": live.timer, "runs_table": runs.table, "runs_total": runs.total,
               "choice": runs.choice, "who": runs.who}
    s.start.click(**ui.by_name(h.start, outputs), inputs=[ctx.selection, *s.values], **quiet)
    s.stop.click(h.stop, live.followed, None, **quiet)
    _wire_delete(h, runs, outputs, quiet)
    runs.resume.click(**ui.by_name(h.resume, {**outputs, "resume": runs.resume}),
                      inputs=runs.picked, **quiet)
    live.timer.tick(**ui.by_name(h.poll, outputs), inputs=live.followed, **quiet)
    ctx.demo.load(**ui.by_name(h.reattach, outputs), inputs=None, **quiet)
    runs.refresh.click(**ui.by_name(h.refresh, outputs), inputs=None, **quiet)
    runs.choice.input(**ui.by_name(h.show_run, {
        "run_curves": runs.curves, "confusion": runs.confusion, "per_class": runs.per_class,
        "gallery": runs.gallery}), inputs=runs.choice, **quiet)
    runs.use.click(**ui.by_name(h.use_run, {"selection_request": ctx.selection_request,
                                            "weights": ctx.weights}),
                   inputs=runs.choice, **quiet)


def _wire_delete(h: Handlers, runs: Runs, listing: dict[str, Any],
                 quiet: dict[str, Any]) -> None:
    confirming = {"picked": runs.picked, "delete": runs.delete, "resume": runs.resume,
                  "confirm_box": runs.confirm_box, "confirm_text": runs.confirm_text,
                  "confirm": runs.confirm}
    runs.table.select(**ui.by_name(h.pick, confirming), inputs=None, **quiet)
    runs.delete.click(**ui.by_name(h.ask_delete, confirming), inputs=runs.picked, **quiet)
    runs.confirm.click(**ui.by_name(h.confirm_delete, {**confirming, **listing}),
                       inputs=runs.picked, **quiet)
    runs.cancel.click(**ui.by_name(h.cancel_delete, confirming), inputs=None, **quiet)


def _api_endpoints(ctx: TabContext) -> None:
    """Named endpoints (README: "HTTP API"); errors reach the caller. The runs directory is
    shared by every session: those endpoints hold no session state (`gr.api`). /use_run
    sets this session's network and weights, which only an event reaches: a hidden trigger."""
    api = make_api(ctx)
    for name in ("train_start", "train_status", "train_stop", "train_resume", "delete_run",
                 "runs"):
        ui.api(api[name], name)
    with gr.Group(visible=False):
        run_id, out, use = gr.Textbox(), gr.JSON(), gr.Button()
    use.click(**ui.by_name(api["use_run"], {"selection": ctx.selection, "weights": ctx.weights,
                                            "json": out}), inputs=run_id, api_name="use_run")
