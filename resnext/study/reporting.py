"""`report` (the CLI's `show`): a study's trials and, per point, MACs, params, time, test
accuracy and every metric of every method as mean and 95 % interval over the seeds, with the
differences the intervals do not support marked. Plain JSON types throughout: the CLI prints
it, the app's Study tab shows it; `to_csv` and `to_text` render it.

Comparisons (the rule is `stats.difference`'s: supported when the 95 % Welch interval of
the difference excludes 0): each point against the best point of each measure ("vs_best":
is the best really better than this one?) and each point against the one before it in the
study's order of values ("steps": did this step of the knob change anything?).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ..complexity import complexity
from ..train.runs import PROGRESS_FILE, read_json
from . import search as searching
from . import stats
from .knobs import config_for
from .spec import OWNER_ATTR, StudySpec
from .worker import open_study

STATES = ("COMPLETE", "RUNNING", "WAITING", "FAIL", "PRUNED")
ACCURACY = "accuracy"


def _when(trial: FrozenTrial, key: str) -> str | None:
    moment = getattr(trial, key)
    return None if moment is None else moment.isoformat(timespec="seconds")


def trial_row(trial: FrozenTrial, runs_dir: Path) -> dict[str, Any]:
    """One trial as the live table shows it; a running one's progress from its run folder
    when that folder is on this machine."""
    attrs = trial.user_attrs
    params = dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))
    row = {"number": trial.number, "state": trial.state.name, "params": params,
           "run_id": attrs.get("run_id"), "accuracy": attrs.get("accuracy"),
           "metrics": attrs.get("metrics"), "seconds": attrs.get("seconds"),
           "worker": attrs.get("worker"), "error": attrs.get("error"),
           "retry_of": trial.system_attrs.get("failed_trial"), "same_as": attrs.get("same_as"),
           "started": _when(trial, "datetime_start"),
           "completed": _when(trial, "datetime_complete"), "progress": None}
    if trial.state == TrialState.RUNNING and row["run_id"]:
        event = read_json(runs_dir / row["run_id"] / PROGRESS_FILE)
        if isinstance(event, dict):
            row["progress"] = {k: event.get(k) for k in
                               ("epoch", "epochs", "step", "steps", "eta_seconds")}
    return row


def _measures(trials: list[FrozenTrial], spec: StudySpec) -> dict[str, list[float]]:
    """measure -> one value per seed: "accuracy", "seconds", "<method>.<metric>"."""
    found: dict[str, list[float]] = {ACCURACY: [], "seconds": []}
    for trial in trials:
        attrs = trial.user_attrs
        found[ACCURACY].append(attrs["accuracy"])
        found["seconds"].append(attrs.get("seconds", math.nan))
        for method, metrics in (attrs.get("metrics") or {}).items():
            for metric, value in metrics.items():
                found.setdefault(f"{method}.{metric}", []).append(value)
    return found


def _point(value: Any, cfg: Any, trials: list[FrozenTrial], spec: StudySpec
           ) -> dict[str, Any]:
    cost, base = complexity(cfg, spec.image_size), complexity(spec.base, spec.image_size)
    samples = _measures(trials, spec)
    metrics: dict[str, dict[str, Any]] = {}
    for measure, values in samples.items():
        if "." in measure:
            method, metric = measure.split(".", 1)
            metrics.setdefault(method, {})[metric] = stats.summary(values)
    return {"value": value, "config": cfg.to_dict(), "name": cfg.name, "macs": cost.macs,
            "params": cost.params, "macs_ratio": cost.macs / base.macs,
            "params_ratio": cost.params / base.params, "n": len(trials),
            "seeds": [t.params.get("seed") for t in trials],
            "accuracy": stats.summary(samples[ACCURACY]),
            "seconds": stats.summary(samples["seconds"]), "metrics": metrics,
            "runs": [t.user_attrs.get("run_id") for t in trials], "_samples": samples}


def _grid_points(spec: StudySpec, finished: list[FrozenTrial]) -> list[dict[str, Any]]:
    points = []
    for value in spec.values:
        by_seed: dict[Any, FrozenTrial] = {}
        for trial in finished:  # one result per seed, the first finished if ever two
            if trial.params.get("value") == value:
                by_seed.setdefault(trial.params.get("seed"), trial)
        cfg = config_for(spec.base, spec.knob, value, spec.keep_complexity, spec.image_size)
        points.append(_point(value, cfg, list(by_seed.values()), spec))
    return points


def _search_points(spec: StudySpec, finished: list[FrozenTrial]) -> list[dict[str, Any]]:
    from ..config import ResNeXtConfig

    points = []
    for trial in finished:
        if "same_as" in trial.user_attrs:
            continue  # the network was trained once; its copy adds no seed
        cfg = ResNeXtConfig.from_dict(trial.user_attrs["config"])
        label = f"{cfg.cardinality}x{cfg.bottleneck_width}d, blocks {trial.params['blocks']}"
        point = _point(label, cfg, [trial], spec)
        point["trial"] = trial.number
        points.append(point)
    return points


def higher_is_better(measure: str) -> bool:
    from ..explain.names import HIGHER_IS_BETTER

    if measure == ACCURACY:
        return True
    return HIGHER_IS_BETTER.get(measure.split(".", 1)[-1], True)


def _compared(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill each point's "vs_best" and return the steps between neighbouring points."""
    measures = sorted({m for p in points for m in p["_samples"] if m != "seconds"},
                      key=lambda m: (m != ACCURACY, m))
    for point in points:
        point["vs_best"] = {}
    for measure in measures:
        scored = [p for p in points if p["_samples"].get(measure)]
        if not scored:
            continue
        sign = 1 if higher_is_better(measure) else -1
        best = max(scored, key=lambda p: sign * math.fsum(p["_samples"][measure]) /
                   len(p["_samples"][measure]))
        for point in scored:
            point["vs_best"][measure] = None if point is best else {
                "best": best["value"],
                **stats.difference(best["_samples"][measure], point["_samples"][measure])}
    steps = []
    for before, after in zip(points, points[1:]):
        for measure in measures:
            if before["_samples"].get(measure) and after["_samples"].get(measure):
                steps.append({"measure": measure, "from": before["value"], "to": after["value"],
                              **stats.difference(after["_samples"][measure],
                                                 before["_samples"][measure])})
    return steps


def _pareto(study: Any, points: list[dict[str, Any]], spec: StudySpec) -> list[dict[str, Any]]:
    assert spec.search is not None
    front = set(searching.pareto(study))
    method, metric = spec.search.method, spec.search.metric
    return [{"trial": p["trial"], "value": p["value"], "config": p["config"], "macs": p["macs"],
             "params": p["params"], "accuracy": p["accuracy"]["mean"],
             "objective": {"method": method, "metric": metric,
                           "value": p["metrics"].get(method, {}).get(metric, {}).get("mean")},
             "run_id": p["runs"][0]}
            for p in points if p["trial"] in front]


def report(name: str, storage: str | None = None, runs_dir: str | Path = "runs"
           ) -> dict[str, Any]:
    """The study as plain data (the CLI's `show --json`): "points", "steps", "seeds_needed",
    "trials", "counts" (trials per Optuna state) and, for a search, "pareto"."""
    opened = open_study(name, storage, runs_dir)
    study, spec = opened.study, opened.spec
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials
                if t.state == TrialState.COMPLETE and t.user_attrs.get("accuracy") is not None]
    points = (_grid_points if spec.search is None else _search_points)(spec, finished)
    steps = _compared(points)
    sd = stats.pooled_sd([p["_samples"][ACCURACY] for p in points])
    counts = {state: sum(t.state.name == state for t in trials) for state in STATES}
    result = {
        "name": name, "mode": spec.mode, "knob": spec.knob,
        "storage": opened.url, "owner": study.user_attrs.get(OWNER_ATTR),
        "spec": spec.to_dict(), "counts": counts, "total": len(trials),
        "done": counts["WAITING"] == 0 and counts["RUNNING"] == 0,
        "points": points, "steps": steps,
        "seeds_needed": {"delta": stats.DEFAULT_DELTA, "sd": sd,
                         "n": stats.seeds_needed(sd)},
        "trials": [trial_row(t, Path(runs_dir)) for t in trials]}
    if spec.search is not None:
        result["pareto"] = _pareto(study, points, spec)
    for point in points:
        del point["_samples"]
    return result


def _summary_cells(summary: dict[str, Any] | None) -> list[Any]:
    if not summary or summary.get("mean") is None:
        return ["", "", ""]
    low, high = summary["ci95"] or ("", "")
    return [summary["mean"], low, high]


def _metric_names(points: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted({(method, metric) for p in points for method, metrics in p["metrics"].items()
                   for metric in metrics})


def to_csv(result: dict[str, Any]) -> str:
    """One row per point: cost, n, accuracy and each method's metrics (mean, 95 % interval),
    time, the verdict against the best point on accuracy, and the run ids."""
    points = result["points"]
    names = _metric_names(points)
    header = ["value", "network", "macs", "params", "n", "accuracy", "accuracy_low",
              "accuracy_high", "accuracy_vs_best"]
    for method, metric in names:
        header += [f"{method}.{metric}", f"{method}.{metric}_low", f"{method}.{metric}_high"]
    header += ["seconds", "runs"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for p in points:
        row = [p["value"], p["name"], p["macs"], p["params"], p["n"],
               *_summary_cells(p["accuracy"]), stats.verdict(p, ACCURACY)]
        for method, metric in names:
            row += _summary_cells(p["metrics"].get(method, {}).get(metric))
        row += [p["seconds"]["mean"] if p["seconds"]["mean"] is not None else "",
                " ".join(r for r in p["runs"] if r)]
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    return buffer.getvalue()


def _interval(summary: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    if summary["mean"] is None:
        return "-"
    text = f"{summary['mean'] * scale:.{digits}f}"
    if summary["ci95"] is None:
        return text + " (n=1)"
    low, high = (v * scale for v in summary["ci95"])
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


# The metrics the text's table shows per method, with their column titles; the others are
# in the JSON and the CSV. The distractor share only where the data has distractors.
TEXT_METRICS = {"energy": "energy", "distractor_share": "on distractors"}


def _point_lines(result: dict[str, Any]) -> list[str]:
    points = result["points"]
    methods = sorted({m for p in points for m in p["metrics"]})
    shown = [(method, metric) for method in methods for metric in TEXT_METRICS
             if any(metric in p["metrics"].get(method, {}) for p in points)]
    rows = [["value", "network", "MACs", "params", "n", "accuracy % [95 % CI]", "vs best",
             *[f"{method} {TEXT_METRICS[metric]}" for method, metric in shown]]]
    for p in points:
        cells = [_interval(p["metrics"][method][metric], 1.0, 3)
                 if metric in p["metrics"].get(method, {}) else "-" for method, metric in shown]
        rows.append([str(p["value"]), p["name"], f"{p['macs'] / 1e6:,.1f} M",
                     f"{p['params'] / 1e3:,.1f} k", str(p["n"]),
                     _interval(p["accuracy"], 100.0), stats.verdict(p, ACCURACY), *cells])
    return _table(rows)


def params_text(params: dict[str, Any]) -> str:
    """"value=4 seed=1", a search's share of the width to three digits."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


def to_text(result: dict[str, Any]) -> str:
    """A readable report: points, accuracy steps, seeds needed, trials."""
    counts = ", ".join(f"{n} {state}" for state, n in result["counts"].items() if n)
    kind = "search" if result["mode"] == "search" else f"grid over {result['knob']}"
    lines = [f"study {result['name']} ({kind}) in {result['storage']}: {result['total']} "
             f"trials: {counts or 'none'}", ""]
    lines += _point_lines(result)
    for step in result["steps"]:
        if step["measure"] == ACCURACY and step["ci95"] is not None:
            low, high = (100 * v for v in step["ci95"])
            verdict = "supported" if step["supported"] else "NOT supported by the intervals"
            lines.append(f"{step['from']} -> {step['to']}: accuracy {100 * step['difference']:+.1f}"
                         f" points [{low:+.1f}, {high:+.1f}], {verdict}")
    needed = result["seeds_needed"]
    if needed["n"] is not None:
        lines.append(f"seeds per point to tell a {100 * needed['delta']:.0f}-point accuracy "
                     f"difference at the observed spread (sd {100 * needed['sd']:.2f} points): "
                     f"{needed['n']}")
    if result.get("pareto"):
        lines.append("Pareto front: " + "; ".join(
            f"trial {p['trial']} {p['value']}" for p in result["pareto"]))
    lines.append("")
    rows = [["trial", "state", "params", "run", "accuracy"]]
    for trial in result["trials"]:
        accuracy = trial["accuracy"]
        rows.append([str(trial["number"]), trial["state"], params_text(trial["params"]),
                     trial["run_id"] or "-",
                     "-" if accuracy is None else f"{100 * accuracy:.1f} %"])
    return "\n".join(lines + _table(rows)) + "\n"


def studies(storage: str | None = None, runs_dir: str | Path = "runs") -> list[dict[str, Any]]:
    """Every study in the storage: {"name", "mode", "trials", "counts", "created", "owner"}
    (what a study picker lists; a study not made by resnext.study has mode None)."""
    import optuna

    from . import storage as stores

    database = stores.open_storage(storage, runs_dir)
    listed = []
    for summary in optuna.get_all_study_summaries(database, include_best_trial=False):
        spec = summary.user_attrs.get("spec") or {}
        trials = optuna.load_study(study_name=summary.study_name,
                                   storage=database).get_trials(deepcopy=False)
        listed.append({
            "name": summary.study_name,
            "mode": ("search" if spec.get("search") else "grid") if spec else None,
            "trials": len(trials), "owner": summary.user_attrs.get(OWNER_ATTR),
            "counts": {state: sum(t.state.name == state for t in trials) for state in STATES},
            "created": None if summary.datetime_start is None
            else summary.datetime_start.isoformat(timespec="seconds")})
    return sorted(listed, key=lambda s: s["name"])
