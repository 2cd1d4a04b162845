"""What the Train tab draws: the live progress line and curves of a run, and, for a finished
run, its confusion matrix, per-class accuracy and test images with their predictions."""

from __future__ import annotations

import html
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..shared import formatting as fmt
from ..shared import plots
from ..shared.drawing import draw_outline, enlarge, to_uint8

GRID_IMAGES = 24  # test images shown with their predictions, mistakes first
_REPORTS_KEPT = 4


def _eta(seconds: float | None) -> str:
    return "–" if seconds is None else fmt.duration(seconds)


def rate_line(event: dict[str, Any]) -> str:
    """The engine's one recent rate and the time left derived from it (`resnext.train.clock`):
    the two always agree."""
    rate = event.get("images_per_second")
    if not rate:
        return "measuring the rate…"
    return f"{rate:,.0f} images/s now · about {_eta(event.get('eta_seconds'))} left at that rate"


def busy_note(device: str) -> str:
    """On a CPU run, the note that the machine is busy (`resnext.train.clock.busy_note`);
    on a GPU other processes barely matter."""
    from resnext.train.clock import busy_note as note, machine_load

    return (note(machine_load()) or "") if str(device).startswith("cpu") else ""


def progress_html(status: dict[str, Any]) -> str:
    """One line and a bar: where the run is, how fast, how long is left."""
    run = status["run"]
    state = run["state"]
    if state == "queued":
        return (f'<div class="rx-title">{html.escape(run["run_id"])} is waiting: number '
                f'{status["queue_position"]} in line for {html.escape(run["device"])} (one '
                f'training at a time per device).</div>')
    event = status.get("progress") or {}
    history = status.get("history") or []
    if state == "running" and event and event.get("kind") != "done":
        total = max(1, int(event.get("steps_total") or 1))
        done = int(event.get("global_step") or 0)
        share = min(1.0, done / total)
        loss = event.get("loss")
        parts = [f"epoch {event.get('epoch')}/{event.get('epochs')}",
                 f"step {done:,}/{total:,}",
                 f"loss {loss:.3f}" if loss is not None else "",
                 f"lr {event.get('lr', 0):.3g}", rate_line(event),
                 busy_note(run.get("device", ""))]
        text = " · ".join(p for p in parts if p)
    elif state == "running":
        share, text = 0.0, "starting (loading the data and the network)…"
        if history:  # resumed: the last event on disk is the earlier process's "done"
            share = len(history) / run["epochs"] if run["epochs"] else 0.0
            text = f"resuming after epoch {len(history)}/{run['epochs']} (loading)…"
    else:
        share = 1.0 if state == "finished" else (
            len(history) / run["epochs"] if run["epochs"] else 0.0)
        accuracy = history[-1]["test_accuracy"] if history else None
        text = (f"{state}: {len(history)}/{run['epochs']} epochs"
                + (f", test accuracy {100 * accuracy:.1f} %" if accuracy is not None else "")
                + (f" — {run['error']}" if run.get("error") else ""))
    bar = (f'<div class="rx-progress"><div class="rx-progress-fill" '
           f'style="width:{100 * share:.1f}%"></div></div>')
    return (f'<div class="rx-title">{html.escape(run["network"])} on '
            f'{html.escape(run["dataset"])} · {html.escape(run["run_id"])}</div>{bar}'
            f'<div class="rx-note">{html.escape(text)}</div>')


def curves_figure(status: dict[str, Any]):
    """Loss (every followed step, and each epoch's train and test loss) and accuracy
    (train and test, per epoch) against epochs; the learning rate below."""
    import plotly.graph_objects as go

    history = status.get("history") or []
    steps = status.get("steps") or []
    fig = plots.subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                         row_heights=[0.42, 0.38, 0.2],
                         subplot_titles=("Loss", "Accuracy", "Learning rate"))
    if steps:
        per_epoch = steps[-1]["steps_total"] / max(1, steps[-1]["epochs"])
        x = [s["global_step"] / per_epoch for s in steps]
        fig.add_trace(go.Scatter(x=x, y=[s["loss"] for s in steps], mode="lines",
                                 name="train loss (steps)", line={"color": "#9ecae1"},
                                 hovertemplate="epoch %{x:.2f}: %{y:.3f}<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[s["lr"] for s in steps], mode="lines", name="lr",
                                 line={"color": "#9467bd"}, showlegend=False,
                                 hovertemplate="epoch %{x:.2f}: lr %{y:.3g}<extra></extra>"),
                      row=3, col=1)
    epochs = [row["epoch"] for row in history]
    for key, name, colour, row_index, dash in (
            ("train_loss", "train loss", "#1f77b4", 1, "solid"),
            ("test_loss", "test loss", "#ff7f0e", 1, "solid"),
            ("train_accuracy", "train accuracy", "#1f77b4", 2, "dot"),
            ("test_accuracy", "test accuracy", "#ff7f0e", 2, "dot")):
        fig.add_trace(go.Scatter(x=epochs, y=[r[key] for r in history], mode="lines+markers",
                                 name=name, line={"color": colour, "dash": dash},
                                 hovertemplate=f"epoch %{{x}}: {name} %{{y:.3f}}<extra></extra>"),
                      row=row_index, col=1)
    if not steps and history:
        fig.add_trace(go.Scatter(x=epochs, y=[r["lr"] for r in history], mode="lines+markers",
                                 name="lr", line={"color": "#9467bd"}, showlegend=False),
                      row=3, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title_text="epoch", rangemode="tozero", row=3, col=1)
    fig.update_layout(height=600, margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0})
    if not steps and not history:
        fig.add_annotation(text="No epoch yet: curves appear as the run learns.", x=0.5, y=0.5,
                           xref="paper", yref="paper", showarrow=False)
    return fig


@dataclass(frozen=True)
class RunReport:
    """A run's model measured on its own test split (the split it reports)."""

    run_id: str
    epoch: int
    classes: tuple[str, ...]
    labels: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,)
    confidence: np.ndarray  # (N,) softmax probability of the prediction
    images: np.ndarray  # (K, H, W, 3) uint8, the grid's images (mistakes first)
    grid_indices: np.ndarray  # (K,) their indices in the test split
    masks: np.ndarray | None  # (K, H, W) bool object masks (shapes)

    @property
    def accuracy(self) -> float:
        return float((self.labels == self.predictions).mean()) if len(self.labels) else 0.0

    def confusion(self) -> np.ndarray:
        """counts[true, predicted]."""
        size = len(self.classes)
        counts = np.zeros((size, size), dtype=np.int64)
        np.add.at(counts, (self.labels, self.predictions), 1)
        return counts

    def per_class_accuracy(self) -> list[tuple[str, int, float | None]]:
        counts = self.confusion()
        totals = counts.sum(axis=1)
        return [(name, int(totals[i]), float(counts[i, i] / totals[i]) if totals[i] else None)
                for i, name in enumerate(self.classes)]


_REPORTS: OrderedDict[tuple, RunReport] = OrderedDict()
_REPORTS_LOCK = threading.Lock()


def run_report(run_dir: Path) -> RunReport:
    """Load a run (safetensors), rebuild its test split, and predict every test image.

    Batched as the engine's own evaluation (its batch size: a CPU convolution's rounding
    depends on it, and a barely trained network's near-tied logits can flip), so the
    accuracy is the one the run reported. Cached per (folder, saved epoch).
    """
    import torch

    from resnext import data as datasets
    from resnext.train import load_run
    from resnext.train.engine import EVAL_BATCH as batch_size

    from resnext.train.runs import model_file as weights_file

    model_file = weights_file(run_dir)
    if not model_file.is_file():
        raise ValueError(f"{run_dir.name} has no saved epoch yet: nothing to evaluate")
    key = (str(run_dir.resolve()), model_file.stat().st_mtime_ns)
    with _REPORTS_LOCK:
        if key in _REPORTS:
            _REPORTS.move_to_end(key)
            return _REPORTS[key]
    cfg, model, meta = load_run(run_dir)
    pair = datasets.from_spec(meta["data"])
    test = pair.test
    mean = torch.tensor(pair.mean).view(1, 3, 1, 1)
    std = torch.tensor(pair.std).view(1, 3, 1, 1)
    labels, predictions, confidence = [], [], []
    with torch.inference_mode():
        for start in range(0, len(test), batch_size):
            images = test.images[start:start + batch_size]
            x = (images.float() / 255 if images.dtype == torch.uint8 else images.float())
            logits = model((x - mean) / std)
            predicted = logits.argmax(dim=1)
            top = logits.softmax(dim=1).gather(1, predicted[:, None])[:, 0]
            predictions.append(predicted.numpy())
            confidence.append(top.numpy())
            labels.append(test.labels[start:start + batch_size].numpy())
    labels_array = np.concatenate(labels).astype(np.int64)
    predicted_array = np.concatenate(predictions).astype(np.int64)
    confidence_array = np.concatenate(confidence)
    wrong = np.flatnonzero(labels_array != predicted_array)
    right = np.flatnonzero(labels_array == predicted_array)
    # Mistakes first, most confident mistakes first: the most telling ones.
    order = np.concatenate([wrong[np.argsort(-confidence_array[wrong])], right])[:GRID_IMAGES]
    images = np.stack([to_uint8(test[int(i)][0]) for i in order]) if len(order) else np.zeros(
        (0, pair.image_size, pair.image_size, 3), np.uint8)
    masks = None if test.masks is None else test.masks[order].numpy()
    report = RunReport(run_dir.name, int(meta.get("epoch", 0)), tuple(pair.classes),
                       labels_array, predicted_array, confidence_array, images, order, masks)
    with _REPORTS_LOCK:
        _REPORTS[key] = report
        while len(_REPORTS) > _REPORTS_KEPT:
            _REPORTS.popitem(last=False)
    return report


def confusion_figure(report: RunReport):
    counts = report.confusion()
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    names = list(report.classes)
    many = len(names) > 20
    data = [{"type": "heatmap", "z": shares.tolist(), "x": names, "y": names,
             "customdata": counts.tolist(), "colorscale": "Blues", "zmin": 0, "zmax": 1,
             "colorbar": {"title": {"text": "share of row"}, "tickformat": ".0%"},
             "hovertemplate": "true %{y}, predicted %{x}: %{customdata} images "
                              "(%{z:.1%} of the row)<extra></extra>"}]
    if not many:
        data[0].update(text=counts.tolist(), texttemplate="%{text}")
    layout = {"height": 460 if not many else 700,
              "title": {"text": f"Confusion matrix on the {len(report.labels):,} test images "
                                f"(accuracy {100 * report.accuracy:.1f} %)", "font": {"size": 13}},
              "xaxis": {"title": {"text": "predicted"}, "type": "category"},
              "yaxis": {"title": {"text": "true class"}, "type": "category",
                        "autorange": "reversed"}}
    return plots.figure(data, layout)


def per_class_rows(report: RunReport) -> list[list[Any]]:
    return [[name, total, "–" if accuracy is None else f"{100 * accuracy:.1f} %"]
            for name, total, accuracy in report.per_class_accuracy()]


def prediction_gallery(report: RunReport) -> list[tuple[np.ndarray, str]]:
    """The grid's test images (object outlined for shapes) captioned true → predicted."""
    items = []
    for position, index in enumerate(report.grid_indices):
        true, predicted = report.labels[index], report.predictions[index]
        picture = report.images[position]
        if report.masks is not None:
            picture = draw_outline(picture, report.masks[position])
        mark = "✓" if true == predicted else "✗"
        caption = (f"{mark} {report.classes[true]} → {report.classes[predicted]} "
                   f"({100 * report.confidence[index]:.0f} %)")
        items.append((enlarge(picture), caption))
    return items


# The runs table's line and the delete confirmation ---------------------------------------------

def runs_summary(records: list[Any]) -> str:
    """The line under the runs table: how many runs, and their bytes on disk together."""
    total = sum(record.size_bytes for record in records)
    return (f'<div class="rx-note">{len(records):,} run{"s" * (len(records) != 1)} · '
            f'{fmt.byte_size(total)} on disk. Click a row to delete that run.</div>')


def delete_prompt(record: Any) -> tuple[str, str]:
    """(question, confirm button label) naming the run, its owner and its size."""
    size = fmt.byte_size(record.size_bytes)
    owner = f", {html.escape(record.owner)}'s" if record.owner else ""
    question = (f'<div class="rx-title">Delete {html.escape(record.run_id)} ({size}{owner}, '
                f'{html.escape(record.state)})?</div><div class="rx-note">Its folder and '
                f'everything in it (weights, metrics, log) are removed from the runs '
                f'directory. This cannot be undone.</div>')
    return question, f"Confirm: delete {record.run_id} ({size})"


def signed_in(user: str, admin: bool, accounts: bool) -> str:
    """Who this page acts as: shown only on a server with accounts."""
    if not accounts:
        return ""
    role = " (admin: may stop and delete every run)" if admin else ""
    return (f'<div class="rx-note">Signed in as <b>{html.escape(user)}</b>{role} · '
            f'<a href="logout">Log out</a></div>')
