"""Evaluation on a trained shapes network: batched attribution against image by image, the
randomization check's time, and what the metrics say about a trained network, its
random-weights twin and a shortcut run. All ratios are measured in this one run.

    python -m benchmarks.bench_evaluate [--train 6000] [--epochs 6] [--images 200] [--single-images 50]

1. Train the default small variant (C=4, d=16, base_planes=16, one block per stage, CIFAR
   stem) on `shapes` with `resnext.train.fit` (quick recipe), and a twin on the shortcut
   variant (marker colour = class with p = 0.9 in training, random at test).
2. Attribute the eight methods (Integrated Gradients with its black baseline) on `--images`
   test images: batched (`attribute_batch` on the evaluation's channels-last copy, 64 images
   per forward) against image by image (one image per call, Captum's internal batch 8, as
   the Attributions tab runs a method), alternating, and print the ratio.
3. `evaluate` (all ten rows and a random-map row) on the trained network and on a freshly
   initialised network of the same config; `sanity_check` time; the shortcut run's marker
   share against the marker's share of the image.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

import resnext
from resnext.explain import evaluation as ev

DEFAULT_VARIANT = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16,
                                        stage_blocks=(1, 1, 1), stem="cifar", num_classes=6)
EIGHT = ("saliency", "integrated_gradients_black", "gradient_shap", "deeplift", "smoothgrad",
         "occlusion", "gradcam", "guided_gradcam")


def train(data, epochs: int, out_dir: Path, label: str):
    from resnext import train as training

    cfg = DEFAULT_VARIANT.replace(num_classes=len(data.classes))
    start = time.perf_counter()
    result = training.fit(cfg, data, epochs=epochs, batch_size=64, recipe="quick", seed=0,
                          out_dir=out_dir)
    seconds = time.perf_counter() - start
    _, model, _ = training.load_run(result.run_dir)
    print(f"{label}: trained {epochs} epochs on {len(data.train)} images in {seconds:.0f} s, "
          f"test accuracy {result.test_accuracy:.1%}")
    return cfg, model


def time_attribution(model, data, images_count: int, single_count: int) -> None:
    """Batched on all `images_count` images; image by image on the first `single_count`
    (each image costs the same, so its time is scaled by images_count / single_count)."""
    batch = ev.load_test_batch(data.test, images_count, data.mean, data.std)
    single_count = min(single_count, images_count)
    scale = images_count / single_count
    targets = batch.labels
    fast_net = ev.prepare_model(model, channels_last=True)
    fast_images = batch.images.contiguous(memory_format=torch.channels_last)
    plain_net = model.eval()
    common = {"mean": data.mean, "std": data.std}
    print(f"\nAttribution, {images_count} test images at {batch.images.shape[-1]} px, seconds "
          f"(image by image = one call per image, internal batch 8, timed on {single_count} "
          f"images x {scale:g}); load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'method':30s} {'batched':>8s} {'one by one':>11s} {'ratio':>6s}")
    total_batched = total_single = 0.0
    # Warm-up: oneDNN picks its kernels on the first call of each shape.
    ev.attribute_batch(fast_net, fast_images[:64], targets[:64], "saliency", **common)
    ev.attribute_batch(plain_net, batch.images[:1], targets[:1], "saliency", max_batch=8, **common)
    for method in EIGHT:
        start = time.perf_counter()
        ev.attribute_batch(fast_net, fast_images, targets, method, max_batch=64, **common)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(single_count):
            ev.attribute_batch(plain_net, batch.images[i:i + 1], targets[i:i + 1], method,
                               max_batch=8, **common)
        single = (time.perf_counter() - start) * scale
        total_batched += batched
        total_single += single
        print(f"{method:30s} {batched:8.2f} {single:11.2f} {single / batched:6.1f}x")
    print(f"{'all eight':30s} {total_batched:8.2f} {total_single:11.2f} "
          f"{total_single / total_batched:6.1f}x   (load average after: {os.getloadavg()[0]:.1f})")


def print_table(title: str, result) -> None:
    print(f"\n{title}: accuracy on these {len(result.indices)} images {result.accuracy:.1%}, "
          f"evaluate took {result.seconds:.0f} s")
    header = f"{'method':32s} {'energy':>7s} {'pointing':>8s} {'del AUC':>8s} {'ins AUC':>8s}"
    if result.has_marker:
        header += f" {'marker':>7s}"
    print(header)
    for row in result.rows:
        line = (f"{row['label']:32s} {row['energy']:7.3f} {row['pointing']:8.3f} "
                f"{row['deletion_auc']:8.3f} {row['insertion_auc']:8.3f}")
        if result.has_marker:
            line += f" {row['marker_share']:7.3f}"
        print(line)
    line = f"{'(random map: mask share)':32s} {result.random_line('energy'):7.3f} {result.random_line('pointing'):8.3f}"
    if result.has_marker:
        line += f" {'':8s} {'':8s} {result.random_line('marker_share'):7.3f}"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=6000, help="training images")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=200, help="test images to evaluate")
    parser.add_argument("--single-images", type=int, default=50,
                        help="images timed one by one (scaled to --images)")
    parser.add_argument("--sanity-images", type=int, default=50)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    from resnext import data as datasets

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"variant {DEFAULT_VARIANT.name}")
    with tempfile.TemporaryDirectory() as folder:
        clean = datasets.shapes(n_train=args.train, n_test=1000, image_size=32, seed=0)
        cfg, model = train(clean, args.epochs, Path(folder) / "clean", "shapes")
        time_attribution(model, clean, args.images, args.single_images)

        methods = list(ev.DEFAULT_ROWS) + ["random"]
        trained = ev.evaluate(model, clean.test, methods, args.images, mean=clean.mean,
                              std=clean.std)
        print_table("Trained network", trained)
        twin = resnext.build_model(cfg, generator=torch.Generator().manual_seed(1)).eval()
        random_result = ev.evaluate(twin, clean.test, methods, args.images, mean=clean.mean,
                                    std=clean.std)
        print_table("Random-weights twin (same config, fresh init)", random_result)

        sanity = ev.sanity_check(model, clean.test, ev.DEFAULT_SANITY_ROWS, args.sanity_images,
                                 mean=clean.mean, std=clean.std)
        print(f"\nRandomization check: {len(sanity.steps) - 1} cascade steps x "
              f"{len(ev.DEFAULT_SANITY_ROWS)} methods on {sanity.n_images} images: "
              f"{sanity.seconds:.1f} s. Spearman of |maps| vs trained:")
        print(f"{'method':32s} " + " ".join(f"{s:>7s}" for s in sanity.steps))
        for method, curves in sanity.curves.items():
            print(f"{sanity.labels[method]:32s} " + " ".join(f"{v:7.3f}" for v in curves["spearman"]))

        shortcut = datasets.shapes(n_train=args.train, n_test=1000, image_size=32, seed=0,
                                   shortcut=0.9)
        _, shortcut_model = train(shortcut, args.epochs, Path(folder) / "shortcut",
                                  "shapes-shortcut (p = 0.9)")
        for target in ("label", "predicted"):
            result = ev.evaluate(shortcut_model, shortcut.test, methods, args.images,
                                 mean=shortcut.mean, std=shortcut.std, target=target)
            print_table(f"Shortcut run, maps of the {target} class", result)


if __name__ == "__main__":
    main()
