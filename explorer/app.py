"""The app factory: `create_app()` builds the Gradio Blocks; nothing heavy at import."""

from __future__ import annotations

import gradio as gr

from . import components as ui
from .context import AppOptions, TabContext
from .selection import default_selection
from .shared.models import WeightsChoice
from .train.jobs import QueueLimits, TrainingManager
from .architecture import tab as architecture
from .attributions import tab as attributions
from .complexity import tab as complexity
from .evaluate import tab as evaluate
from .run import tab as run
from .study import tab as study
from .train import tab as train

PAPER_URL = "https://arxiv.org/abs/1611.05431"
SIGN_IN_MESSAGE = ("ResNeXt Explorer: sign in with the account the server's administrator "
                   "made for you (python -m explorer users add NAME).")
INTRO = (
    "# ResNeXt Explorer\n"
    "ResNeXt ([Xie et al., *Aggregated Residual Transformations for Deep Neural Networks*, "
    f"CVPR 2017]({PAPER_URL})) splits each ResNet bottleneck into **C parallel paths** of width "
    "**d** — *cardinality* as a new dimension next to depth and width. Pick a preset or move the "
    "sliders: every number below is exact, computed from the configuration without building weights."
)


def ping() -> str:
    """The cheapest endpoint there is: the framework's own round-trip floor for benchmarks."""
    return "ok"


def create_app(options: AppOptions | None = None) -> gr.Blocks:
    options = options or AppOptions()
    # Uploaded and generated files live in Gradio's cache; every 10 minutes, those older
    # than an hour are deleted (and all of them when the server restarts).
    with gr.Blocks(title="ResNeXt Explorer", delete_cache=(600, 3600)) as demo:
        gr.Markdown(INTRO)
        selection = gr.State(default_selection())
        weights = gr.State(WeightsChoice())
        device = gr.State(options.default_device)
        ctx = TabContext(options=options, demo=demo, selection=selection, weights=weights,
                         device=device, selection_request=gr.State(None),
                         training=TrainingManager(options.runs_dir, options.data_dir,
                                                  options.queue_limits or QueueLimits(),
                                                  options.admin_names))
        with gr.Tabs():
            with gr.Tab("Architecture", id="architecture"):
                architecture.build(ctx)
            with gr.Tab("Complexity", id="complexity"):
                complexity.build(ctx)
            with gr.Tab("Run", id="run"):
                run.build(ctx)
            with gr.Tab("Train", id="train") as train_tab:
                train.build(ctx, train_tab)
            with gr.Tab("Attributions", id="attributions"):
                attributions.build(ctx)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate.build(ctx)
            with gr.Tab("Study", id="study"):
                study.build(ctx)
        # Queued like every real endpoint, so it measures the same path minus the work.
        ui.api(ping, "ping")
    return demo


def launch_options(options: AppOptions | None = None) -> dict:
    """Keyword arguments for `demo.launch` shared by `python -m explorer` and the tests; with
    accounts (`options.accounts`), the page and the API ask to sign in."""
    from .theme import CSS

    launch = {"css": CSS, "max_file_size": "20mb", "show_error": True, "footer_links": ["api"]}
    if options is not None and options.accounts is not None:
        launch.update(auth=options.accounts, auth_message=SIGN_IN_MESSAGE)
    return launch
