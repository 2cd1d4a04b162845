"""Attribution maps and metrics before and after issue 17's move to `resnext.explain`: what
stayed bit for bit, and the before/after numbers where a rule changed on purpose.

    git worktree add /tmp/before 5d512ac       # the last commit before the move
    python tools/compare_explain_rules.py --before /tmp/before [--run RUN_DIR] [--images 6]

Each side runs in its own process with its own checkout first on sys.path (the old code
lives in explorer/services/, the new in resnext/explain/), on the same fixture: a seeded
ResNeXt (C=4, base planes 16, one block per stage, random weights with random BatchNorm
statistics) or a trained run's weights (--run), and the first test images of the 32-px
shapes dataset (or the run's). Computed on each side: the one-image path (all eight
methods, IG with each baseline, and their deletion AUC), the batched path (every row),
`evaluate` (every metric, per image), the randomization check's curves, and the top-k
overlap of two disjoint blobs. The report prints the largest |after - before| per quantity,
and means where a rule changed: the blurred baseline's sigma (side/20 -> side/8 on the
Attributions tab), the blur itself (kornia -> one separable blur), the one-image deletion
curve's tie order, and the top-k overlap's tie order.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("saliency", "integrated_gradients", "gradient_shap", "deeplift", "smoothgrad",
           "occlusion", "gradcam", "guided_gradcam")
SINGLE_BASELINES = {"integrated_gradients": ("black", "blurred", "noise"),
                    "gradient_shap": ("black",), "deeplift": ("black", "blurred"),
                    "occlusion": ("black",)}
SANITY_METHODS = ("saliency", "gradcam", "guided_gradcam")


# The fixture: written once, by the new code -------------------------------------------------

def make_fixture(path: Path, run: str | None, images: int) -> None:
    import torch

    import resnext
    from resnext import data

    if run:
        from resnext.train import load_run

        cfg, model, meta = load_run(run)
        pair = data.from_spec(meta["data"])
    else:
        cfg = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=4, base_planes=16,
                                    stage_blocks=(1, 1, 1), stem="cifar", num_classes=6)
        model = resnext.build_model(cfg, generator=torch.Generator().manual_seed(0))
        generator = torch.Generator().manual_seed(1)
        for module in model.modules():  # eval-mode BatchNorm that is not the identity
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
        pair = data.shapes(n_train=64, n_test=images, image_size=32, seed=0)
    pixels, labels = pair.test.batch(torch.arange(images))
    torch.save({"config": cfg.to_dict(), "state": model.state_dict(), "pixels": pixels,
                "labels": labels, "masks": pair.test.masks[:images].clone(),
                "mean": tuple(pair.mean), "std": tuple(pair.std)}, path)


# One side's numbers ---------------------------------------------------------------------------

def side_api(new: bool) -> dict[str, Any]:
    """The modules of one side, under common names."""
    if new:
        from resnext.explain import batch, evaluation, sanity, single
    else:
        from explorer.services import attribution as single
        from explorer.services import eval_attribution as batch
        from explorer.services import evaluation
        from explorer.services import sanity
    return {"single": single, "batch": batch, "evaluation": evaluation, "sanity": sanity}


class Split:
    """A test split with masks, as `evaluate` reads one."""

    def __init__(self, pixels: Any, labels: Any, masks: Any) -> None:
        self.pixels, self.labels, self.masks = pixels, labels, masks
        self.marker_masks = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.pixels[index], int(self.labels[index])


def same_randomness() -> None:
    """Both sides start each call from the same global generators (torch's and numpy's:
    Captum's GradientShap draws from numpy's, which the old code never seeded; the new code
    seeds both with 0 itself, `batch.seeded_randomness`)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)


def one_image_path(api: dict, model: Any, x: Any, labels: Any, mean: tuple, std: tuple
                   ) -> dict[str, Any]:
    import numpy as np

    single = api["single"]
    out: dict[str, Any] = {}
    for method in METHODS:
        for baseline in SINGLE_BASELINES.get(method, ("black",)):
            settings = single.AttributionSettings(
                method=method, baseline=baseline, n_steps=16, internal_batch_size=8,
                n_samples=8, window=8, stride=4)
            maps, aucs = [], []
            for i in range(x.shape[0]):
                same_randomness()
                result = single.attribute(model, x[i:i + 1], int(labels[i]), settings,
                                          mean=mean, std=std)
                maps.append(result.pixel_map)
                aucs.append(single.deletion_curve(model, x[i:i + 1], result.pixel_map,
                                                  int(labels[i])).auc)
            out[f"single map/{method}/{baseline}"] = np.stack(maps)
            out[f"single deletion AUC/{method}/{baseline}"] = np.array(aucs)
    return out


def batched_path(api: dict, model: Any, x: Any, labels: Any, mean: tuple, std: tuple,
                 split: Split) -> dict[str, Any]:
    import numpy as np

    batch, evaluation, sanity = api["batch"], api["evaluation"], api["sanity"]
    settings = batch.BatchSettings(n_steps=8, n_samples=4)
    rows = [*batch.DEFAULT_ROWS, "random"]
    out: dict[str, Any] = {}
    for row in rows:
        same_randomness()
        out[f"batch map/{row}"] = batch.attribute_batch(
            model, x, labels, row, settings=settings, mean=mean, std=std).numpy()
    same_randomness()
    result = evaluation.evaluate(model, split, rows, n_images=len(split), mean=mean, std=std,
                                 settings=settings, steps=10)
    for scores in result.methods:
        for metric in ("energy", "pointing", "deletion_auc", "insertion_auc"):
            out[f"evaluate {metric}/{scores.method}"] = np.asarray(getattr(scores, metric))
    same_randomness()
    check = sanity.randomization_check(model, x, labels, SANITY_METHODS, mean=mean, std=std,
                                       settings=settings)
    for method, curves in check.curves.items():
        for measure, values in curves.items():
            out[f"sanity {measure}/{method}"] = np.array(values)
    return out


def blob_overlap(api: dict) -> dict[str, Any]:
    import numpy as np
    import torch

    a, b = torch.zeros(1, 32, 32), torch.zeros(1, 32, 32)
    a[0, 2:8, 2:8] = 1.0
    b[0, 20:26, 20:26] = 1.0
    return {"top-k overlap/two disjoint 36-px blobs": np.asarray(api["sanity"].topk_overlap(a, b))}


def compute(fixture: Path, out: Path, new: bool) -> None:
    import numpy as np
    import torch

    import resnext

    torch.set_num_threads(1)  # the same arithmetic order on both sides
    saved = torch.load(fixture, weights_only=True)
    model = resnext.build_model(resnext.ResNeXtConfig.from_dict(saved["config"]))
    model.load_state_dict(saved["state"])
    model.eval()
    mean, std = tuple(saved["mean"]), tuple(saved["std"])
    x = (saved["pixels"] - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    labels = saved["labels"]
    split = Split(saved["pixels"], labels, saved["masks"])
    api = side_api(new)
    values = {**one_image_path(api, model, x, labels, mean, std),
              **batched_path(api, model, x, labels, mean, std, split), **blob_overlap(api)}
    np.savez(out, **{key: np.asarray(value, dtype=np.float64) for key, value in values.items()})


def blur_probabilities(fixture: Path) -> dict[str, float]:
    """Mean probability of the true class on the images, on their blurred baseline at the
    old one-image rule (side / 20) and at the one rule now (side / 8): how much of what the
    network uses each reference leaves."""
    import torch

    import resnext
    from resnext.explain.baselines import gaussian_blur

    saved = torch.load(fixture, weights_only=True)
    model = resnext.build_model(resnext.ResNeXtConfig.from_dict(saved["config"]))
    model.load_state_dict(saved["state"])
    model.eval()
    mean = torch.tensor(saved["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(saved["std"]).view(1, 3, 1, 1)
    x = (saved["pixels"] - mean) / std
    side = min(x.shape[-2:])
    rows = torch.arange(x.shape[0])
    out = {}
    with torch.no_grad():
        for name, image in [("image", x), (f"blur sigma {max(1.0, side / 20):g} px (side/20)",
                                           gaussian_blur(x, max(1.0, side / 20))),
                            (f"blur sigma {max(1.0, side / 8):g} px (side/8)", gaussian_blur(x))]:
            probability = torch.softmax(model(image), dim=1)[rows, saved["labels"]]
            out[name] = float(probability.mean())
    return out


# The report -----------------------------------------------------------------------------------

def report(before: Any, after: Any) -> list[dict[str, Any]]:
    import numpy as np

    lines = []
    for key in sorted(set(before.files) | set(after.files)):
        if key not in before.files or key not in after.files:
            lines.append({"quantity": key, "note": "only " + ("after" if key in after.files
                                                              else "before")})
            continue
        old, new = before[key], after[key]
        scale = float(np.abs(old).max()) or 1.0
        difference = np.abs(new - old)
        lines.append({"quantity": key, "max_abs_diff": float(np.nanmax(difference)),
                      "relative": float(np.nanmax(difference)) / scale,
                      "before_mean": float(np.nanmean(old)), "after_mean": float(np.nanmean(new))})
    return lines


def print_report(lines: list[dict[str, Any]], tolerance: float) -> None:
    same = [line for line in lines if line.get("relative", 1.0) <= tolerance]
    changed = [line for line in lines if line not in same]
    print(f"{len(same)} of {len(lines)} quantities agree (max |after - before| <= "
          f"{tolerance:g} x their scale); largest such difference: "
          f"{max((line['max_abs_diff'] for line in same), default=0):.2e}")
    for line in same:
        print(f"  same     {line['quantity']:55s} max |diff| {line['max_abs_diff']:.1e}")
    print("Changed on purpose (before -> after, mean over images / steps):")
    for line in changed:
        if "note" in line:
            print(f"  {line['quantity']:64s} {line['note']}")
            continue
        if "map/" in line["quantity"]:  # maps: how far they moved, against their scale
            print(f"  changed  {line['quantity']:55s} max |diff| / max |before| "
                  f"{100 * line['relative']:.1f} %")
            continue
        print(f"  changed  {line['quantity']:55s} {line['before_mean']:.4f} -> "
              f"{line['after_mean']:.4f}  (max |diff| {line['max_abs_diff']:.2e})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True,
                        help="a checkout of the commit before the move (5d512ac)")
    parser.add_argument("--run", help="a trained run's folder (default: seeded random weights)")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="relative difference still counted as the same (float noise)")
    parser.add_argument("--json", type=Path, help="also write the lines as JSON")
    parser.add_argument("--side", choices=["before", "after"], help=argparse.SUPPRESS)
    parser.add_argument("--fixture", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        compute(args.fixture, args.out, new=args.side == "after")
        return 0
    import numpy as np

    sys.path.insert(0, str(ROOT))  # the fixture is written by this checkout's code
    work = Path(tempfile.mkdtemp(prefix="explain-rules-"))
    fixture = work / "fixture.pt"
    sides = {"after": ROOT, "before": args.before.resolve()}
    make_fixture(fixture, args.run, args.images)
    for side, tree in sides.items():
        environment = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--before",
                        str(args.before), "--side", side, "--fixture", str(fixture), "--out",
                        str(work / f"{side}.npz")], check=True, cwd=tree, env=environment)
    lines = report(np.load(work / "before.npz"), np.load(work / "after.npz"))
    print_report(lines, args.tolerance)
    print("Mean probability of the true class (after's code):")
    for name, value in blur_probabilities(fixture).items():
        print(f"  {name:32s} {value:.3f}")
    if args.json:
        args.json.write_text(json.dumps(lines, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
