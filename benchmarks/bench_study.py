"""A Table-2 study at the small scale on this CPU, and what the study machinery costs per trial.

The paper's Table 2 holds complexity while C grows (1, 2, 4, 8, 32); here the base network
is a ResNet of the small scale (C = 1, d = 64, base_planes 16, one block per stage, CIFAR
stem, 32-px shapes) and keep-complexity gives each C its d. Five points x three seeds =
15 trials, each `fit` + Grad-CAM and saliency scored on the test split.

1. Total time of the study on this CPU: create (plan, data, queue) + one worker's 15 trials.
2. Per-trial overhead of the machinery (take a trial atomically, heartbeats, the run folder
   name, Optuna's suggest/attrs/tell, the complexity count) against the same work done
   plainly: `resnext.train.fit` of the same config, data and seed into a run folder, then
   `resnext.explain.evaluate` of the same methods on the same images. Study trials
   (`resnext.study.step`, one trial each) and plain runs alternate, the first of each pair
   switching every round, so drift on a shared machine hits both alike. Target: <= 5 %.
   On a loaded machine single pairs differ by tens of percent either way, so the benchmark
   also prints the machinery's own time inside each study trial: the step's wall time
   minus that trial's fit + scoring, measured in the same trial.

    python -m benchmarks.bench_study [--threads 2] [--epochs 2] [--train 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

import resnext
from resnext import study
from resnext.study.estimation import wall_seconds
from resnext.study.knobs import config_for

OVERHEAD_TARGET_PERCENT = 5.0
BASE = resnext.ResNeXtConfig(cardinality=1, bottleneck_width=64, base_planes=16,
                             stage_blocks=(1, 1, 1), stem="cifar", num_classes=6)


def plain_trial(spec: study.StudySpec, data, value, seed: int, out: Path) -> float:
    """Seconds of the same trial without the study: fit into a run folder, then evaluate."""
    from resnext.explain import evaluate

    cfg = config_for(spec.base, spec.knob, value, spec.keep_complexity, spec.image_size)
    began = time.perf_counter()
    fitted = resnext.train.fit(cfg, data, epochs=spec.epochs, batch_size=spec.batch_size,
                               recipe=spec.recipe, seed=seed, out_dir=out)
    evaluate(fitted.model, data.test, list(spec.methods), spec.n_images, mean=data.mean,
             std=data.std, keep_maps=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="bench-study-"))
    runs, plain_runs = folder / "runs", folder / "plain"
    spec = study.StudySpec(
        name="table2", base=BASE, knob="cardinality", values=(1, 2, 4, 8, 32),
        keep_complexity=True, seeds=(0, 1, 2), epochs=args.epochs, batch_size=64,
        data=study.data_spec("shapes", train_size=args.train, test_size=200, image_size=32),
        methods=("saliency", "gradcam"), n_images=32)
    try:
        # Warm-up, untimed: first-use costs (imports, oneDNN kernels) would otherwise land
        # on whichever of the first pair ran first.
        first = spec.grid()[0]
        plain_trial(spec, resnext.data.from_spec(spec.data), first["value"], first["seed"],
                    plain_runs / "warm-up")
        began = time.perf_counter()
        study.create(spec, runs_dir=runs)
        worker = study.start("table2", runs_dir=runs)
        setup = time.perf_counter() - began
        in_study, plainly = [], []
        for index, params in enumerate(spec.grid()):
            order = ("study", "plain") if index % 2 == 0 else ("plain", "study")
            for kind in order:
                start = time.perf_counter()
                if kind == "study":
                    outcome, _ = study.step(worker)
                    assert outcome == "complete", outcome
                    in_study.append(time.perf_counter() - start)
                else:
                    plainly.append(plain_trial(spec, worker.data, params["value"],
                                               params["seed"], plain_runs / f"run{index}"))
            print(f"trial {index} ({params}): study {in_study[-1]:.1f} s, plain "
                  f"{plainly[-1]:.1f} s", flush=True)
        report(spec, runs, setup, in_study, plainly, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(spec, runs, setup, in_study, plainly, args) -> None:
    total = setup + sum(in_study)
    overhead = 100 * (sum(in_study) / sum(plainly) - 1)
    ratios = sorted(s / p for s, p in zip(in_study, plainly))
    result = study.report("table2", runs_dir=runs)
    # Within each study trial: its step's wall time minus its own fit + scoring (the trial's
    # "seconds"): what the machinery adds, free of the drift between two separate runs.
    work = [t["seconds"] for t in result["trials"]]
    machinery = [s - w for s, w in zip(in_study, work)]
    print()
    print(study.to_text(result))
    print(f"CPU: {os.cpu_count()} cores, torch threads {args.threads}, load average "
          f"{os.getloadavg()[0]:.1f}; {len(in_study)} trials of {args.epochs} epochs on "
          f"{args.train} shapes images at 32 px")
    print(f"study total: {total:.0f} s (create + data {setup:.1f} s, trials "
          f"{sum(in_study):.0f} s), {sum(in_study) / len(in_study):.1f} s per trial")
    print(f"plain fit + evaluate of the same 15 runs: {sum(plainly):.0f} s")
    verdict = "met" if overhead <= OVERHEAD_TARGET_PERCENT else "MISSED"
    print(f"per-trial overhead of the study machinery: {overhead:+.1f} % of the plain time "
          f"(median ratio {ratios[len(ratios) // 2]:.3f}; target <= "
          f"{OVERHEAD_TARGET_PERCENT:.0f} %): {verdict}")
    print(f"machinery inside the study trials (step minus its own fit + scoring): "
          f"{sum(machinery) / len(machinery):.2f} s per trial, "
          f"{100 * sum(machinery) / sum(work):.2f} % of their fit + scoring "
          f"(largest {max(machinery):.2f} s)")
    print(f"with 3 workers (one per GPU or machine): about "
          f"{wall_seconds(in_study, 3):.0f} s of trials")


if __name__ == "__main__":
    main()
