"""What the Study tab shows of `resnext.study.report`'s result: the live trial table, the
points (mean and 95 % interval over the seeds, the Welch verdict against the best point, the
runs), charts with those intervals as error bars, the study picker's lines.

Plain functions of the report's JSON: every number on the page is the report's, only
formatted (accuracy in %, as the Train tab shows it).
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from resnext.explain.names import METRIC_LABELS, ROW_LABELS
from resnext.study.stats import verdict
from resnext.units import duration

from ..shared.plots import figure, subplots

# The state and the numbers first: a narrow page hides the last columns first.
TRIAL_COLUMNS = ["trial", "state", "params", "test accuracy", "progress", "time", "run",
                 "worker", "note"]
# A point's runs: a click on its row lists them (the ids are long; the CSV has them too).
POINT_COLUMNS = ["value", "network", "MACs", "params", "seeds done",
                 "test accuracy % [95 % CI]", "vs best"]
# Without widths the network's name takes the row and "vs best" falls off a 1400-px page.
POINT_COLUMN_WIDTHS = ["7%", "29%", "11%", "9%", "8%", "20%", "16%"]
ACCURACY_SCALE = 100.0  # accuracy is shown in %


def _progress(row: dict[str, Any]) -> str:
    progress = row.get("progress") or {}
    if not progress.get("epochs"):
        return "–"
    text = f"epoch {progress.get('epoch') or 0}/{progress['epochs']}"
    if progress.get("eta_seconds") is not None:
        text += f", {duration(progress['eta_seconds'])} left"
    return text


def _worker(row: dict[str, Any]) -> str:
    worker = row.get("worker") or {}
    return f"{worker.get('host', '?')}:{worker.get('pid', '?')}" if worker else "–"


def trial_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One row per trial (TRIAL_COLUMNS), in trial order: every worker's, local or not."""
    from resnext.study.reporting import params_text  # Optuna loads on first use, not at start

    rows = []
    for row in result["trials"]:
        accuracy = row.get("accuracy")
        note = row.get("error") or ""
        if row.get("retry_of") is not None:
            note = f"retry of trial {row['retry_of']}" + (f"; {note}" if note else "")
        if row.get("same_as") is not None:
            note = f"same network as trial {row['same_as']}"
        rows.append([row["number"], row["state"], params_text(row["params"]),
                     "–" if accuracy is None else f"{ACCURACY_SCALE * accuracy:.1f} %",
                     _progress(row),
                     "–" if row.get("seconds") is None else duration(row["seconds"]),
                     row.get("run_id") or "–", _worker(row), note])
    return rows


def interval_text(summary: dict[str, Any] | None, scale: float = 1.0, digits: int = 1) -> str:
    """"81.2 [78.0, 84.4]"; "81.2 (n=1)" without an interval; "–" without a value."""
    if not summary or summary.get("mean") is None:
        return "–"
    text = f"{summary['mean'] * scale:.{digits}f}"
    if summary.get("ci95") is None:
        return text + " (n=1)"
    low, high = (value * scale for value in summary["ci95"])
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def point_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One row per point (POINT_COLUMNS)."""
    return [[str(p["value"]), p["name"], f"{p['macs']:,}", f"{p['params']:,}", p["n"],
             interval_text(p["accuracy"], ACCURACY_SCALE), verdict(p) or "–"]
            for p in result["points"]]


def point_runs(result: dict[str, Any], index: int) -> list[str]:
    """The run ids of the `index`-th point (what its row and its chart marker link to)."""
    points = result["points"]
    if not 0 <= index < len(points):
        raise ValueError(f"point: the study has {len(points)} points, got number {index}")
    return [run for run in points[index]["runs"] if run]


def _error_bars(summaries: Sequence[dict[str, Any]], scale: float) -> dict[str, Any]:
    """Asymmetric error bars from each 95 % interval (none where n < 2)."""
    above, below = [], []
    for s in summaries:
        if s.get("mean") is None or s.get("ci95") is None:
            above.append(None)
            below.append(None)
        else:
            above.append((s["ci95"][1] - s["mean"]) * scale)
            below.append((s["mean"] - s["ci95"][0]) * scale)
    return {"type": "data", "symmetric": False, "array": above, "arrayminus": below,
            "visible": True}


def _series(points: list[dict[str, Any]], get: Any, scale: float, x: list[Any],
            **trace: Any) -> dict[str, Any]:
    summaries = [get(p) or {} for p in points]
    return {"type": "scatter", "mode": "lines+markers", "x": x,
            "y": [None if s.get("mean") is None else s["mean"] * scale for s in summaries],
            "error_y": _error_bars(summaries, scale),
            "customdata": [" ".join(r for r in p["runs"] if r) for p in points], **trace}


def _knob_axis(result: dict[str, Any]) -> dict[str, Any]:
    return {"title": {"text": result["knob"]}, "type": "category"}


def accuracy_figure(result: dict[str, Any]):
    """Test accuracy (%) per knob value: mean over the seeds, 95 % interval as error bars."""
    points = result["points"]
    trace = _series(points, lambda p: p["accuracy"], ACCURACY_SCALE,
                    [str(p["value"]) for p in points], name="test accuracy",
                    hovertemplate="%{x}: %{y:.1f} %<br>runs: %{customdata}<extra></extra>")
    return figure([trace], {
        "title": {"text": f"Test accuracy vs {result['knob']} (mean, 95 % CI over seeds)"},
        "xaxis": _knob_axis(result), "yaxis": {"title": {"text": "test accuracy (%)"}},
        "height": 340, "showlegend": False})


def metric_names(result: dict[str, Any]) -> list[str]:
    """Every metric some method of some point reports (whatever explain adds)."""
    return sorted({metric for p in result["points"] for metrics in p["metrics"].values()
                   for metric in metrics})


def metrics_figure(result: dict[str, Any]):
    """One panel per metric, one line per method, against the knob, with 95 % intervals."""
    points, names = result["points"], metric_names(result)
    methods = sorted({m for p in points for m in p["metrics"]})
    if not names:
        return figure([], {"title": {"text": "No attribution metrics yet"}, "height": 200})
    fig = subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                   subplot_titles=[METRIC_LABELS.get(n, n) for n in names])
    x = [str(p["value"]) for p in points]
    for row, metric in enumerate(names, start=1):
        for index, method in enumerate(methods):
            fig.add_trace(_series(
                points, lambda p, m=method, k=metric: p["metrics"].get(m, {}).get(k), 1.0, x,
                name=ROW_LABELS.get(method, method), legendgroup=method,
                showlegend=row == 1, marker={"color": _colour(index)},
                line={"color": _colour(index)},
                hovertemplate=f"{ROW_LABELS.get(method, method)} %{{x}}: %{{y:.3f}}"
                              "<br>runs: %{customdata}<extra></extra>"), row=row, col=1)
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text=result["knob"], row=len(names), col=1)
    fig.update_layout(height=max(300, 230 * len(names)), margin={"t": 40, "b": 40},
                      title={"text": "Attribution metrics vs the knob (mean, 95 % CI)"},
                      legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0})
    return fig


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


def _colour(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


def macs_figure(result: dict[str, Any]):
    """Test accuracy (%) against multiply-adds, each point labelled by its knob value."""
    points = result["points"]
    trace = _series(points, lambda p: p["accuracy"], ACCURACY_SCALE,
                    [p["macs"] for p in points], mode="markers+text",
                    text=[f"{result['knob']} {p['value']}" for p in points],
                    textposition="top center", name="points",
                    hovertemplate="%{text}: %{x:,} MACs, %{y:.1f} %<br>runs: %{customdata}"
                                  "<extra></extra>")
    return figure([trace], {
        "title": {"text": "Test accuracy vs multiply-adds (per image)"},
        "xaxis": {"title": {"text": "MACs"}}, "yaxis": {"title": {"text": "test accuracy (%)"}},
        "height": 340, "showlegend": False})


def summary_html(result: dict[str, Any]) -> str:
    """The study's line: trials per state, owner, storage, this server's workers."""
    counts = ", ".join(f"{n} {state.lower()}" for state, n in result["counts"].items() if n)
    workers = [w for w in result.get("workers", []) if w.get("alive")]
    running = (f"{len(workers)} local worker(s) on {', '.join(w['device'] for w in workers)}"
               if workers else "no local worker running")
    state = "done" if result["done"] else "in progress"
    owner = result.get("owner") or "no owner recorded (made outside the app)"
    spec = result["spec"]
    return (f'<div class="rx-title">Study {html.escape(result["name"])} · {state} · '
            f'{result["total"]} trials: {html.escape(counts or "none")}</div>'
            f'<div class="rx-note">{html.escape(result["knob"])} = '
            f'{html.escape(", ".join(map(str, spec.get("values", []))))} × seeds '
            f'{html.escape(", ".join(map(str, spec.get("seeds", []))))}; owner: '
            f'{html.escape(str(owner))}; {running}; storage {html.escape(result["storage"])}'
            f'</div>')


def study_choices(listed: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The picker's (label, name): every study of the storage (its progress is in the
    summary line, which is live; a label is not)."""
    choices = []
    for item in listed:
        kind = item["mode"] or "not a resnext study"
        owner = f", by {item['owner']}" if item.get("owner") else ""
        choices.append((f"{item['name']} ({kind}, {item['trials']} trials{owner})",
                        item["name"]))
    return choices
