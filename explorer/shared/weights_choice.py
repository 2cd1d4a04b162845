"""The weights panel's logic, shared by the Run and Attributions tabs.

A weights *kind* (random, torchvision ImageNet, an uploaded checkpoint) is one class below,
registered in `KINDS`: it turns the panel's values into a `WeightsChoice`, says which network
the choice implies (`Network`: config, input side, eval transform, class names, sample
images) and describes itself. Everything else (the tab, the model cache, attributions) asks
these functions, so adding a kind (e.g. a trained run with its own classes and test images)
is one class here plus its loader in `models.load_into`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import resnext
from resnext import ResNeXtConfig
from resnext.train import runs
from resnext.validation import SEED_RANGE, whole_number

from ..selection import Selection
from .images import MASK_SUFFIX, Preprocessing, sample_images
from .models import IMAGENET, MODEL_CACHE, RANDOM, RUN, UPLOAD, WeightsChoice
from .predictions import class_names_for

RANDOM_NOTE = ("**Untrained weights.** Maps from a randomly initialised network show its "
               "gradient structure (where the architecture lets signal flow), not learned "
               "evidence, and its predictions are noise. Load ImageNet weights or your own "
               "checkpoint to see what a trained network looks at.")
CHECKPOINT_SUFFIXES = (".pth", ".pt")


@dataclass(frozen=True)
class Network:
    """What a weights choice implies for a forward pass."""

    config: ResNeXtConfig
    image_size: int  # the centre crop's side
    eval_weights: str | None  # published weights whose eval transform (resize, crop) to use
    class_names: tuple[str, ...]
    samples: list[Path] = field(default_factory=list)  # photos to try it on
    # A trained run's own preprocessing; None: ImageNet's eval transform (`preprocessing`).
    transform: Preprocessing | None = None

    @property
    def preprocessing(self) -> Preprocessing:
        """Resize, crop and normalisation of an image for this network."""
        return self.transform or Preprocessing.imagenet(self.eval_weights, self.image_size)


@dataclass(frozen=True)
class PanelValues:
    """What the weights panel holds, whether or not "Use these weights" was pressed."""

    kind: str = RANDOM
    seed: Any = 0
    imagenet_name: str | None = None
    checkpoint: Any = None


# Kinds -------------------------------------------------------------------------------------

class RandomKind:
    key, label = RANDOM, "Random (seed N)"

    def choose(self, panel: PanelValues, selection: Selection, download: Any) -> WeightsChoice:
        return WeightsChoice(kind=RANDOM, seed=whole_number("Seed", panel.seed, *SEED_RANGE))

    def network(self, weights: WeightsChoice, selection: Selection) -> Network:
        return _selected_network(selection)

    def describe(self, weights: WeightsChoice, selection: Selection) -> str:
        return f"{_using(weights, self.network(weights, selection))}\n\n{RANDOM_NOTE}"


class ImageNetKind:
    key, label = IMAGENET, "ImageNet (torchvision)"

    def choose(self, panel: PanelValues, selection: Selection, download: Any) -> WeightsChoice:
        name = panel.imagenet_name
        fitting = imagenet_choices(selection)
        if name not in resnext.PUBLISHED_WEIGHTS:
            raise ValueError(f"ImageNet weights: unknown name {name!r}; "
                             + (f"for {selection.config.name} choose {', '.join(fitting)}"
                                if fitting else no_imagenet_weights(selection)))
        preset = resnext.PUBLISHED_WEIGHTS[name].preset
        if name not in fitting:
            raise ValueError(f"ImageNet weights: {name} are for {preset}, not for the "
                             f"Architecture tab's {selection.config.name}; "
                             + (f"choose {', '.join(fitting)}" if fitting
                                else no_imagenet_weights(selection)))
        ensure_published(name, download)
        return WeightsChoice(kind=IMAGENET, name=name)

    def network(self, weights: WeightsChoice, selection: Selection) -> Network:
        # ImageNet weights bring their own architecture and eval transform (resize, crop).
        published = resnext.PUBLISHED_WEIGHTS[weights.name]
        config = resnext.PRESETS[published.preset]
        return Network(config, published.crop_size, weights.name,
                       class_names_for(config.num_classes), sample_images())

    def describe(self, weights: WeightsChoice, selection: Selection) -> str:
        published = resnext.PUBLISHED_WEIGHTS[weights.name]
        text = (f"Using **{weights.name}** (top-1 {published.top1:.3f} %) on "
                f"{resnext.PRESETS[published.preset].name}: resize {published.resize_size} → "
                f"crop {published.crop_size}.")
        if not fits(weights.name, selection.config):
            text += (f"\n\nThe Architecture tab now shows **{selection.config.name}**, which "
                     f"these weights do not fit: runs use {published.preset}. Choose "
                     + ("weights for it" if imagenet_choices(selection) else "Random")
                     + " and press *Use these weights* to run the network shown.")
        return text


class UploadKind:
    key, label = UPLOAD, "Upload a checkpoint (.pth/.pt)"

    def choose(self, panel: PanelValues, selection: Selection, download: Any) -> WeightsChoice:
        checkpoint = panel.checkpoint
        if isinstance(checkpoint, dict):  # FileData from the API
            checkpoint = checkpoint.get("path")
        if not checkpoint:
            raise ValueError("Checkpoint: no file; upload a .pth or .pt file holding a state_dict")
        path = Path(str(checkpoint))
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ValueError(f"Checkpoint: {path.name} must be a .pth or .pt file")
        return WeightsChoice(kind=UPLOAD, path=str(path), digest=file_digest(path))

    def network(self, weights: WeightsChoice, selection: Selection) -> Network:
        return _selected_network(selection)

    def describe(self, weights: WeightsChoice, selection: Selection) -> str:
        return _using(weights, self.network(weights, selection))


class RunKind:
    """A trained run (the Train tab's "Use this run"): its own network, input side and the
    dataset's class names; its test images are the samples."""

    key, label = RUN, "Trained run (Train tab)"

    def choose(self, panel: PanelValues, selection: Selection, download: Any) -> WeightsChoice:
        raise ValueError("Weights: a trained run is chosen in the Train tab (Use this run)")

    def network(self, weights: WeightsChoice, selection: Selection) -> Network:
        return self._network(weights, run_meta(Path(weights.path)))

    @staticmethod
    def _network(weights: WeightsChoice, meta: dict[str, Any]) -> Network:
        config = ResNeXtConfig.from_dict(meta["model"])
        data = meta["data"]
        size = int(data["image_size"])
        # As the run was trained (resnext.train.engine): the image at its size, each channel
        # normalised by the training set's mean and std; no ImageNet resize ratio or crop.
        transform = Preprocessing(size, size, tuple(float(v) for v in data["mean"]),
                                  tuple(float(v) for v in data["std"]))
        return Network(config, size, None, tuple(data["classes"]),
                       run_samples(Path(weights.path), meta), transform)

    def describe(self, weights: WeightsChoice, selection: Selection) -> str:
        meta = run_meta(Path(weights.path))  # read once: the network and its dataset's name
        network = self._network(weights, meta)
        return (f"Using **{weights.label}**: {network.config.name} trained on "
                f"{meta['data']['name']} at "
                f"{network.image_size}×{network.image_size}, classes "
                f"{', '.join(network.class_names[:10])}"
                + ("…" if len(network.class_names) > 10 else "") + ".")


KINDS = {kind.key: kind for kind in (RandomKind(), ImageNetKind(), UploadKind(), RunKind())}
KIND_LABELS = [(kind.label, key) for key, kind in KINDS.items()]


def _kind(key: str) -> Any:
    if key not in KINDS:
        raise ValueError(f"Weights: kind must be one of {', '.join(KINDS)}, got {key!r}")
    return KINDS[key]


def _using(weights: WeightsChoice, network: Network) -> str:
    """The status sentence of weights that run the Architecture tab's own network."""
    return (f"Using **{weights.label}** for {network.config.name} at "
            f"{network.image_size}×{network.image_size}.")


def _selected_network(selection: Selection) -> Network:
    """The Architecture tab's network with ImageNet-style names for 1000 classes."""
    return Network(selection.config, selection.image_size, None,
                   class_names_for(selection.config.num_classes), sample_images())


# Trained runs -------------------------------------------------------------------------------

RUN_SAMPLES = 12  # test images offered as the Attributions tab's samples


def run_meta(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, checked for what its network and data need (`runs`)."""
    return runs.trained_config(run_dir)


def run_weights(run_dir: Path) -> tuple[WeightsChoice, Selection]:
    """The weights choice and the network (at its training size) of a finished epoch."""
    model_file = runs.model_file(run_dir)
    if not model_file.is_file():
        raise ValueError(f"{run_dir.name} has no saved epoch yet: wait for its first epoch")
    meta = run_meta(run_dir)
    choice = WeightsChoice(kind=RUN, name=run_dir.name, path=str(run_dir),
                           digest=file_digest(model_file))
    return choice, Selection(ResNeXtConfig.from_dict(meta["model"]),
                             int(meta["data"]["image_size"]))


def run_samples(run_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """The run's first test images as PNG files (written once, beside their object masks as
    .mask.npy where the dataset knows them), for the Attributions tab's samples."""
    import json
    import tempfile

    import numpy as np
    from PIL import Image

    # Keyed by the run's folder and its dataset, not its name alone: two runs named alike
    # (in two runs directories) must not share their images.
    spec = json.dumps(meta["data"], sort_keys=True)
    key = hashlib.sha256(f"{run_dir.resolve()}\n{spec}".encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / "resnext-explorer-run-samples" / f"{run_dir.name}-{key}"
    done = folder / "complete"  # written last: the images and masks are all there
    if done.is_file():
        return sorted(folder.glob("test_*.png"))
    from resnext import data as datasets

    test = datasets.from_spec(meta["data"]).test
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(min(RUN_SAMPLES, len(test))):
        image = test.images[index].permute(1, 2, 0).numpy()
        path = folder / f"test_{index:03d}.png"
        if test.masks is not None:  # the mask first: a PNG seen is never without its mask
            np.save(path.with_suffix(MASK_SUFFIX), test.masks[index].numpy())
        Image.fromarray(np.ascontiguousarray(image)).save(path)
        written.append(path)
    done.write_text("")
    return written


# Which network -----------------------------------------------------------------------------

def network_for(weights: WeightsChoice, selection: Selection) -> Network:
    return _kind(weights.kind).network(weights, selection)


def class_names(weights: WeightsChoice, config: ResNeXtConfig) -> tuple[str, ...]:
    """The class names of `config`'s outputs under these weights: a trained run's dataset's,
    else ImageNet's for a 1000-class head and "class N" otherwise."""
    if weights.kind == RUN:
        return tuple(run_meta(Path(weights.path))["data"]["classes"])
    return class_names_for(config.num_classes)


def model_for(weights: WeightsChoice, selection: Selection) -> tuple[ResNeXtConfig, int, str | None]:
    """(config, input size, published weights name for preprocessing) a choice implies."""
    network = network_for(weights, selection)
    return network.config, network.image_size, network.eval_weights


def fits(name: str, config: ResNeXtConfig) -> bool:
    """Do published weights `name` fit `config`? Forms (a)/(b) are converted on load, and
    zero-init of the last BN does not change a tensor's shape."""
    preset = resnext.PRESETS[resnext.PUBLISHED_WEIGHTS[name].preset]
    return config.replace(block_form="c", zero_init_residual=preset.zero_init_residual) == preset


def imagenet_choices(selection: Selection) -> list[str]:
    """The published weights that fit the Architecture tab's network (newest first)."""
    return sorted((name for name in resnext.PUBLISHED_WEIGHTS if fits(name, selection.config)),
                  reverse=True)


def no_imagenet_weights(selection: Selection) -> str:
    presets = sorted({w.preset for w in resnext.PUBLISHED_WEIGHTS.values()})
    return (f"torchvision publishes no ImageNet weights for {selection.config.name}; it does "
            f"for {', '.join(presets)} (pick one of those presets on the Architecture tab)")


# Choosing ----------------------------------------------------------------------------------

def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_published(name: str, download: Callable[..., None] | None = None) -> Path:
    """The published file in the hub cache, downloading it if needed; else a message saying
    which file to fetch and where to put it."""
    from resnext import weights as weights_module

    kwargs = {} if download is None else {"download": download}
    try:
        return weights_module.fetch_published(name, progress=True, **kwargs)
    except resnext.WeightsUnavailableError as error:
        raise resnext.WeightsUnavailableError(
            f"ImageNet weights {name} are not available: {error}. Meanwhile random weights and "
            f"uploaded checkpoints still work.") from None


def choose_weights(kind: str, seed: Any, name: str | None, checkpoint: Any, selection: Selection,
                   device: str = "cpu", download: Callable[..., None] | None = None
                   ) -> WeightsChoice:
    """Validate a choice by loading it (into the shared model cache) and return it.

    Raises WeightsError subclasses with the user-facing message: offline ImageNet weights,
    an unsafe or unreadable checkpoint, or one whose keys/shapes don't fit the config.
    """
    panel = PanelValues(kind, seed, name, checkpoint)
    choice = _kind(kind).choose(panel, selection, download)
    MODEL_CACHE.get(network_for(choice, selection).config, choice, device)  # a mismatch raises
    return choice


def describe(weights: WeightsChoice, selection: Selection,
             panel: PanelValues | None = None) -> str:
    """Markdown status for the panel: what runs use now, for the network on screen.

    `panel` is what the panel shows; when it differs from the weights in use, the status says
    so, so that a choice not yet applied is never mistaken for the one that runs.
    """
    text = _kind(weights.kind).describe(weights, selection)
    if panel is not None and not panel_applied(panel, weights):
        label = dict((key, kind.label) for key, kind in KINDS.items()).get(panel.kind, panel.kind)
        text = (f"**Not applied yet:** the panel shows *{label}*; press **Use these weights** "
                f"to load it. Until then runs use the weights below.\n\n" + text)
    return text


def panel_applied(panel: PanelValues, weights: WeightsChoice) -> bool:
    """Does the panel show the weights in use (nothing chosen and not yet applied)?"""
    if panel.kind != weights.kind:
        return False
    if panel.kind == RANDOM:
        try:
            return whole_number("Seed", panel.seed, *SEED_RANGE) == weights.seed
        except ValueError:
            return False
    if panel.kind == IMAGENET:
        return panel.imagenet_name == weights.name
    return True  # an upload: the file box cannot be compared cheaply; it was applied


def weights_for_preset(weights: WeightsChoice, preset: str) -> tuple[WeightsChoice, str]:
    """Weights for another network (the grid's second config), and a note on the choice.

    ImageNet weights: the same version for the preset if torchvision has it, else any; else
    random. An upload or a trained run fits its own network only, so the other one gets
    random weights.
    """
    if weights.kind == IMAGENET:
        version = weights.name.rsplit("_", 1)[-1]
        candidates = [n for n, w in resnext.PUBLISHED_WEIGHTS.items() if w.preset == preset]
        same = [n for n in candidates if n.endswith(version)]
        if same or candidates:
            name = (same or candidates)[0]
            return WeightsChoice(kind=IMAGENET, name=name), name
        return WeightsChoice(kind=RANDOM), f"random (seed 0): torchvision has no {preset} weights"
    if weights.kind == UPLOAD:
        return WeightsChoice(kind=RANDOM), "random (seed 0): the checkpoint fits the first config only"
    if weights.kind == RUN:  # a run's weights imply its own network: the preset gets random
        return WeightsChoice(kind=RANDOM), "random (seed 0): the run's weights fit its own network only"
    return weights, weights.label
