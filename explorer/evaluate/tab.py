"""Evaluate tab: how good is each attribution method's map on a trained run, measured against
the ground truth of the shapes dataset; how the maps survive randomised weights; how two
networks compare by it.

Layout and wiring only: the run glue is in `runs`, the metrics and sanity check in
`resnext.explain`, the charts in `figures`. Results are per session (gr.State).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors
from ..shared.cancellation import CANCEL_FLAGS, CLICK_TIME_JS, work_key
from . import runs as service

# Evaluations build and run models for seconds to a minute: they share the Attributions
# tab's queue, one at a time, so they never compete for the same cores.
ATTRIBUTION_QUEUE = dict(concurrency_id="attribution", concurrency_limit=1)
FEATURE = "evaluate"  # its Stop flags (shared.cancellation)
PRIVATE = dict(api_visibility="private")
QUIET = dict(api_visibility="private", show_progress="hidden")
INTRO = (
    "How far can each attribution map be trusted? On a run trained on *shapes* every object "
    "pixel is known, so each method's maps of the test images are scored against the truth: "
    "**energy** (share of positive attribution on the object), **pointing game** (is the "
    "map's peak on it), **deletion / insertion AUC** (does removing the most attributed "
    "pixels first destroy the prediction), and on *shapes-shortcut* the share on the "
    "marker. Each is drawn beside what a map without information scores. The **sanity check** "
    "re-initialises the weights stage by stage (Adebayo et al., 2018): maps that do not "
    "change do not explain the weights. Train a run in the **Train** tab first.")


def _stop_flag(request: Any, clicked_at: Any = None):
    """The session's Stop flag for work pressed at `clicked_at` (the page's browser time);
    work pressed before the latest Stop (it waited in the queue) raises `Stopped`, which
    `keep_state` turns into an unchanged page."""
    return CANCEL_FLAGS.work(work_key(request, FEATURE), clicked_at)


def _progress_of(progress: Any):
    return (lambda fraction, desc: progress(fraction, desc=desc)) if progress else None


def _figure_or_hidden(figure: Any):
    return gr.update(value=figure, visible=figure is not None)


# Handlers: page (each answers by name, `components.named`) ----------------------------

class _Page:
    """The page's handlers for one app: the runs they read are the app's runs directory."""

    def __init__(self, ctx: TabContext) -> None:
        self.training = ctx.training
        self.runs_dir = ctx.training.runs_dir

    def reload(self):
        runs = service.evaluable_runs(self.training)
        return {"run": gr.update(choices=runs, value=runs[0] if runs else None),
                "compare_runs": gr.update(choices=runs)}

    @keep_state
    def refresh(self, current: Any, compared: Any):
        runs = service.evaluable_runs(self.training)
        keep = current if current in runs else (runs[0] if runs else None)
        return {"run": gr.update(choices=runs, value=keep),
                "compare_runs": gr.update(choices=runs,
                                          value=[r for r in (compared or []) if r in runs])}

    @keep_state
    def describe(self, run_id: Any):
        if not run_id:
            return "No run chosen: train one on *shapes* in the Train tab, then refresh."
        return service.describe_run(self.runs_dir, run_id)

    @keep_state
    def evaluate(self, run_id: Any, methods: Any, n_images: Any, target: Any,
                 clicked_at: Any = None, request: gr.Request = None, progress=gr.Progress()):
        with _stop_flag(request, clicked_at) as flag:
            evaluation = service.run_evaluation(self.runs_dir, run_id, methods, n_images, target,
                                                progress=_progress_of(progress),
                                                should_stop=flag.is_set)
        result = evaluation.result
        if not result.methods:
            gr.Info(service.STOPPED_NOTE)
            return {}
        figures = service.metric_figures(result)
        methods_shown = service.evaluated_methods(evaluation)
        return {"state": evaluation, "summary": service.summary(evaluation),
                "table": {"headers": service.table_headers(result),
                          "data": service.table_rows(result)},
                "csv": service.csv_download(evaluation),
                **{f"plot_{m}": _figure_or_hidden(figures[m]) for m in service.METRICS},
                "examples_method": gr.update(choices=methods_shown, value=methods_shown[0][1]),
                "examples_metric": gr.update(choices=[c for c in service.METRIC_CHOICES
                                                      if c[1] in service.shown_metrics(result)],
                                             value="energy")}

    def stop(self, clicked_at: Any = None, request: gr.Request = None):
        if CANCEL_FLAGS.cancel(work_key(request, FEATURE), clicked_at):
            gr.Info("Stopping after the current batch of images: what is finished is shown.")
        else:
            gr.Info("No evaluation is running for this page; one waiting, if any, is dropped.")

    @keep_state
    def examples(self, evaluation: Any, method: Any, metric: Any, k: Any):
        if evaluation is None:
            return {}
        best, worst = service.examples(evaluation, method, metric, k)
        return {"best": best, "worst": worst}

    @keep_state
    def pick_row(self, evaluation: Any, event: gr.SelectData):
        method = service.method_of_row(evaluation, event.index[0] if event.index else None)
        return method if method is not None else gr.skip()

    @keep_state
    def sanity(self, run_id: Any, methods: Any, n_images: Any, measure: Any,
               clicked_at: Any = None, request: gr.Request = None, progress=gr.Progress()):
        with _stop_flag(request, clicked_at) as flag:
            result = service.run_sanity(self.runs_dir, run_id, methods, n_images,
                                        progress=_progress_of(progress), should_stop=flag.is_set)
        return {"sanity_state": result,
                "sanity_plot": gr.update(value=service.sanity_chart(result, measure),
                                         visible=True),
                "sanity_note": service.sanity_note(result)}

    @keep_state
    def sanity_measure(self, result: Any, measure: Any):
        return gr.skip() if result is None else service.sanity_chart(result, measure)

    @keep_state
    def compare(self, run_ids: Any, methods: Any, n_images: Any, target: Any, metric: Any,
                current: Any, clicked_at: Any = None, request: gr.Request = None,
                progress=gr.Progress()):
        with _stop_flag(request, clicked_at) as flag:
            comparison = service.compare_runs(self.runs_dir, run_ids, methods, n_images, target,
                                              reuse=[current], progress=_progress_of(progress),
                                              should_stop=flag.is_set)
        return {"compare_state": comparison,
                "compare_table": {"headers": comparison.headers(), "data": comparison.rows()},
                "compare_plot": gr.update(value=service.compare_chart(comparison, metric),
                                          visible=True),
                "compare_note": service.compare_note(comparison)}

    @keep_state
    def compare_metric(self, comparison: Any, metric: Any):
        return gr.skip() if comparison is None else service.compare_chart(comparison, metric)


def make_handlers(ctx: TabContext) -> dict[str, Any]:
    """The page's handlers by name (tests call them directly and read outputs by name)."""
    page = _Page(ctx)
    return {name: getattr(page, name) for name in vars(_Page) if not name.startswith("_")}


# API (named endpoints, no session state: `gr.api`; errors reach the caller) ---------------

def make_api(ctx: TabContext) -> dict[str, Any]:
    runs_dir = ctx.training.runs_dir

    @user_errors
    def evaluate_run(run_id: str, methods: list[str] | str, n_images: float,
                     target: str) -> dict:
        """/evaluate: each method's mean of each metric on a run's first test images, with
        the random-map values (the table's numbers): `resnext.explain`'s `to_json()`, as
        `python -m resnext.explain RUN_DIR --json` prints it."""
        return service.run_evaluation(runs_dir, run_id, methods, n_images, target,
                                      keep_maps=False).to_json()

    @user_errors
    def sanity_check(run_id: str, methods: list[str] | str, n_images: float) -> dict:
        """/sanity_check: the cascading randomization curves of a run's network."""
        return service.run_sanity(runs_dir, run_id, methods, n_images).to_json()

    return {"evaluate": evaluate_run, "sanity_check": sanity_check}


# Layout ------------------------------------------------------------------------------------

class Settings:
    def __init__(self) -> None:
        self.run = ui.Dropdown([], value=None, label="Run",
                               info=service.RUN_INFO)
        with gr.Row(equal_height=False):
            self.run_note = gr.Markdown(elem_id="eval-run-note")
            self.refresh = gr.Button("Refresh the list", size="sm", scale=0, min_width=130)
        self.methods = gr.CheckboxGroup(service.METHOD_CHOICES, value=service.DEFAULT_METHODS,
                                        label="Methods",
                                        info="Integrated Gradients once per baseline; the "
                                             "random map gives the AUCs their reference")
        with gr.Row():
            self.n_images = ui.Number(service.N_IMAGES_DEFAULT, precision=0,
                                      minimum=service.N_IMAGES_RANGE[0],
                                      maximum=service.N_IMAGES_RANGE[1],
                                      label=service.N_IMAGES_LABEL, min_width=120,
                                      info="the first N of the run's test split")
            self.target = ui.Radio(service.TARGET_CHOICES, value=service.DEFAULT_TARGET,
                                   label="Explain", min_width=160)
        with gr.Row():
            self.evaluate = gr.Button("Evaluate", variant="primary")
            self.stop = gr.Button("Stop", variant="stop")
            # When Evaluate, Sanity, Compare or Stop was pressed (browser ms, CLICK_TIME_JS).
            self.clicked_at = gr.Number(0, visible=False)


class Results:
    def __init__(self) -> None:
        self.state = gr.State(None)  # runs.Evaluation of this session
        self.summary = gr.Markdown("Choose a run and press **Evaluate**.",
                                   elem_id="eval-summary")
        self.table = gr.Dataframe(headers=service.table_headers(None), interactive=False,
                                  wrap=True, elem_id="eval-table", elem_classes=["rx-table"],
                                  max_height=720,
                                  label="Mean over the images (click a row for its images)")
        self.csv = gr.DownloadButton("Download the table (CSV)", size="sm",
                                     variant="secondary")
        self.plots: dict[str, Any] = {}
        metrics = list(service.METRICS)
        for pair in (metrics[0:2], metrics[2:4], metrics[4:]):
            with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
                for metric in pair:
                    with gr.Column(scale=1, min_width=320):
                        # Shown with the first result (the marker share: on shortcut runs).
                        self.plots[metric] = gr.Plot(show_label=False,
                                                     elem_id=f"eval-plot-{metric}",
                                                     visible=False)


class Examples:
    def __init__(self) -> None:
        gr.Markdown("### Best and worst images of a method\nIts map (positive part) over "
                    "the image, the object outlined in yellow, the shortcut marker in cyan.")
        with gr.Row(equal_height=True, elem_classes=["rx-wrap"]):
            self.method = ui.Dropdown([], value=None, label="Method", scale=2, min_width=200)
            self.metric = ui.Dropdown(service.METRIC_CHOICES, value="energy", label="Metric",
                                      scale=2, min_width=200)
            self.k = ui.Number(service.EXAMPLES_DEFAULT, precision=0,
                               minimum=service.EXAMPLES_RANGE[0],
                               maximum=service.EXAMPLES_RANGE[1],
                               label=service.EXAMPLES_LABEL, scale=1, min_width=120)
        with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
            with gr.Column(scale=1, min_width=300):
                self.best = gr.Gallery(label="Best", columns=4, height=200,
                                       object_fit="contain", allow_preview=False,
                                       elem_id="eval-best")
            with gr.Column(scale=1, min_width=300):
                self.worst = gr.Gallery(label="Worst", columns=4, height=200,
                                        object_fit="contain", allow_preview=False,
                                        elem_id="eval-worst")

    @property
    def inputs(self) -> list[Any]:
        return [self.method, self.metric, self.k]


class Sanity:
    def __init__(self) -> None:
        gr.Markdown("### Sanity check: cascading randomization")
        self.state = gr.State(None)  # evaluation.SanityResult of this session
        with gr.Row(equal_height=True, elem_classes=["rx-wrap"]):
            self.n_images = ui.Number(service.SANITY_IMAGES_DEFAULT, precision=0,
                                      minimum=service.SANITY_IMAGES_RANGE[0],
                                      maximum=service.SANITY_IMAGES_RANGE[1],
                                      label=service.SANITY_IMAGES_LABEL, scale=1, min_width=140)
            self.measure = ui.Radio(service.MEASURE_CHOICES, value="spearman",
                                    label="Similarity", scale=2, min_width=260)
        with gr.Row():
            self.run = gr.Button("Sanity check", scale=0, min_width=180)
        self.note = gr.Markdown(elem_id="eval-sanity-note")
        self.plot = gr.Plot(show_label=False, elem_id="eval-sanity", visible=False)


class Compare:
    def __init__(self) -> None:
        gr.Markdown("### Compare runs\nThe same methods, images and target on two or more "
                    "runs of one dataset: does cardinality (or a shortcut) change where the "
                    "network looks?")
        self.state = gr.State(None)  # runs.Comparison of this session
        with gr.Row(equal_height=True, elem_classes=["rx-wrap"]):
            self.runs = ui.Dropdown([], value=[], multiselect=True, label="Runs to compare",
                                    scale=3, min_width=240)
            self.metric = ui.Dropdown(service.METRIC_CHOICES, value="energy",
                                      label="Chart metric", scale=2, min_width=200)
        with gr.Row():
            self.run = gr.Button("Compare", scale=0, min_width=180)
        self.note = gr.Markdown(elem_id="eval-compare-note")
        self.table = gr.Dataframe(headers=service.COMPARE_HEADERS_FIXED, interactive=False,
                                  wrap=True, elem_id="eval-compare-table", max_height=720,
                                  elem_classes=["rx-table"])
        self.plot = gr.Plot(show_label=False, elem_id="eval-compare-plot", visible=False)


def build(ctx: TabContext) -> None:
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
        with gr.Column(scale=1, min_width=320):
            settings = Settings()
        with gr.Column(scale=2, min_width=480):
            results = Results()
    examples = Examples()
    sanity = Sanity()
    compare = Compare()
    _wire(ctx, settings, results, examples, sanity, compare)


# Wiring ------------------------------------------------------------------------------------

def _outputs(s: Settings, r: Results, x: Examples, sanity: Sanity, compare: Compare
             ) -> dict[str, Any]:
    """The components the handlers answer to, by the names they use."""
    return {"run": s.run, "compare_runs": compare.runs, "state": r.state,
            "summary": r.summary, "table": r.table, "csv": r.csv,
            **{f"plot_{m}": r.plots[m] for m in service.METRICS},
            "examples_method": x.method, "examples_metric": x.metric, "best": x.best,
            "worst": x.worst, "sanity_state": sanity.state, "sanity_plot": sanity.plot,
            "sanity_note": sanity.note, "compare_state": compare.state,
            "compare_table": compare.table, "compare_plot": compare.plot,
            "compare_note": compare.note}


def _wire(ctx: TabContext, s: Settings, r: Results, x: Examples, sanity: Sanity,
          compare: Compare) -> None:
    h = make_handlers(ctx)
    out = _outputs(s, r, x, sanity, compare)
    answers = {name: ui.named(h[name], out) for name in ("reload", "refresh", "evaluate",
                                                      "examples", "sanity", "compare")}
    _api_endpoints(ctx)
    runs = [s.run, compare.runs]
    ctx.demo.load(answers["reload"], None, runs, **QUIET).then(
        h["describe"], s.run, s.run_note, **QUIET)
    s.refresh.click(answers["refresh"], runs, runs, **QUIET).then(
        h["describe"], s.run, s.run_note, **QUIET)
    s.run.change(h["describe"], s.run, s.run_note, **QUIET)

    show_examples = dict(fn=answers["examples"], inputs=[r.state, *x.inputs],
                         outputs=[x.best, x.worst], **QUIET)
    # Each press carries its browser time: Stop drops work still waiting in the queue.
    pressed = dict(js=CLICK_TIME_JS, **PRIVATE, **ATTRIBUTION_QUEUE)
    evaluate = s.evaluate.click(
        answers["evaluate"], [s.run, s.methods, s.n_images, s.target, s.clicked_at],
        [r.state, r.summary, r.table, r.csv, *(r.plots[m] for m in service.METRICS), x.method,
         x.metric], **pressed)
    evaluate.then(**show_examples)
    # Queued (so its message reaches the page) but never waiting: no concurrency limit.
    s.stop.click(h["stop"], s.clicked_at, None, js=CLICK_TIME_JS, **QUIET,
                 concurrency_limit=None)
    r.table.select(h["pick_row"], r.state, x.method, **QUIET).then(**show_examples)
    for control in (x.method, x.metric):
        control.input(**show_examples)
    x.k.submit(**show_examples)
    x.k.blur(**show_examples)

    sanity.run.click(answers["sanity"], [s.run, s.methods, sanity.n_images, sanity.measure,
                                         s.clicked_at], [sanity.state, sanity.plot, sanity.note],
                     **pressed)
    sanity.measure.input(h["sanity_measure"], [sanity.state, sanity.measure], sanity.plot,
                         **QUIET)

    compare.run.click(answers["compare"], [compare.runs, s.methods, s.n_images, s.target,
                                           compare.metric, r.state, s.clicked_at],
                      [compare.state, compare.table, compare.plot, compare.note], **pressed)
    compare.metric.input(h["compare_metric"], [compare.state, compare.metric], compare.plot,
                         **QUIET)


def _api_endpoints(ctx: TabContext) -> None:
    """/evaluate and /sanity_check hold no session state (a run id in, JSON out): plain
    `gr.api` endpoints, typed by their functions' hints, in the attribution queue."""
    api = make_api(ctx)
    gr.api(api["evaluate"], api_name="evaluate", **ATTRIBUTION_QUEUE)
    gr.api(api["sanity_check"], api_name="sanity_check", **ATTRIBUTION_QUEUE)
