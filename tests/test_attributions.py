"""Attribution maps: known answers on tiny models, IG completeness, the deletion curve, the
overlay, the weights panel's messages, and the tab's endpoints through the real HTTP API."""

import pickle
import threading
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

import resnext
from conftest import randomize_batchnorm
from explorer.selection import Selection
from explorer.services import attribution as service
from explorer.services.images import prepare_image, sample_images
from explorer.services.models import MODEL_CACHE, WeightsChoice
from explorer.services.weights_choice import choose_weights

# 4 stages so every Grad-CAM layer kind exists; 10 classes so there is a top-5.
TINY = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2, stage_blocks=(1, 1, 1, 1),
                             num_classes=10)
FAST = dict(n_steps=8, n_samples=4, internal_batch_size=4, window=8, stride=8)


class RegionModel(nn.Module):
    """Reads only the top-left 8×8 of a 16×16 image: 1×1 convs mix no pixels, then a crop."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU())
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)  # (N, 4, 16, 16)
        return self.fc(features[:, :, :8, :8].flatten(1))  # (N, 3)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "gradient_shap",
                                    "deeplift", "smoothgrad", "occlusion", "guided_gradcam"])
def test_region_model_gets_no_attribution_elsewhere(method):
    torch.manual_seed(1)
    model = RegionModel().eval()
    x = torch.randn(1, 3, 16, 16)
    settings = service.AttributionSettings(method=method, layer="features", n_steps=8,
                                           n_samples=4, internal_batch_size=4, window=4, stride=4,
                                           baseline="noise")
    result = service.attribute(model, x, 0, settings)
    outside = result.values.copy()
    outside[:, :8, :8] = 0
    assert np.count_nonzero(outside) == 0
    assert np.abs(result.values[:, :8, :8]).sum() > 0  # and something inside


@pytest.mark.parametrize("baseline", ["black", "blurred", "noise"])
def test_integrated_gradients_completeness(baseline):
    torch.manual_seed(2)
    model = resnext.build_model(TINY)
    randomize_batchnorm(model, torch.Generator().manual_seed(2))
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    target = 4
    settings = service.AttributionSettings(method="integrated_gradients", n_steps=64,
                                           internal_batch_size=64, baseline=baseline)
    result = service.attribute(model, x, target, settings)
    reference = service.make_baseline(x, baseline)
    with torch.no_grad():
        change = float(model(x)[0, target] - model(reference)[0, target])
    total = float(result.values.astype(np.float64).sum())
    assert abs(total - change) <= 0.05 * abs(change) + 1e-3
    assert result.convergence_delta == pytest.approx(total - change, abs=1e-3)


def test_internal_batching_does_not_change_integrated_gradients():
    torch.manual_seed(3)
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    one = service.attribute(model, x, 1, service.AttributionSettings(
        method="integrated_gradients", n_steps=12, internal_batch_size=12))
    batched = service.attribute(model, x, 1, service.AttributionSettings(
        method="integrated_gradients", n_steps=12, internal_batch_size=5))
    np.testing.assert_allclose(one.values, batched.values, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", list(service.METHODS))
def test_every_method_runs_on_a_resnext(method):
    torch.manual_seed(4)
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    result = service.attribute(model, x, 2, service.AttributionSettings(
        method=method, layer="layer3.0", **FAST))
    channels = 1 if method == "gradcam" else 3
    assert result.values.shape == (channels, 32, 32)
    assert result.pixel_map.shape == (32, 32)
    assert np.isfinite(result.values).all() and np.abs(result.values).sum() > 0
    if method == "gradcam":
        assert result.values.min() >= 0  # ReLU of Grad-CAM (Selvaraju et al., Eq. 2)
    assert (result.convergence_delta is not None) == (method in ("integrated_gradients", "deeplift"))
    # Captum's hooks are gone afterwards: the shared model is left as it was.
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())


def test_cancel_stops_at_the_next_forward_and_leaves_no_hooks():
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    cancel = threading.Event()
    calls = []

    def report(fraction):
        calls.append(fraction)
        cancel.set()  # press Cancel after the first batch

    with pytest.raises(service.AttributionCancelled):
        service.attribute(model, x, 0, service.AttributionSettings(
            method="integrated_gradients", n_steps=16, internal_batch_size=2),
            report=report, cancel=cancel)
    assert len(calls) == 1
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())


class LinearTwoClass(nn.Module):
    """logit_0 = sum(w * x), logit_1 = 0: removing pixel p lowers logit_0 by exactly w_p·x_p."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", weights)  # (1, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.w).flatten(1).sum(dim=1)  # (N,)
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)  # (N, 2)


def test_deletion_curve_on_a_known_order():
    side, steps = 4, 4
    contribution = torch.arange(1, side * side + 1, dtype=torch.float32).view(side, side) / 20
    weights = contribution.expand(1, 3, side, side).clone() / 3  # each pixel adds `contribution`
    model = LinearTwoClass(weights)
    x = torch.ones(1, 3, side, side)
    best = service.deletion_curve(model, x, contribution.numpy(), target=0, steps=steps,
                                  batch_size=3)
    worst = service.deletion_curve(model, x, -contribution.numpy(), target=0, steps=steps)
    # Expected: after removing the k largest contributions, logit = sum of the rest.
    ordered = np.sort(contribution.numpy().reshape(-1))[::-1]
    logits = [ordered[k * side * side // steps:].sum() for k in range(steps + 1)]
    np.testing.assert_allclose(best.probabilities, 1 / (1 + np.exp(-np.array(logits))), rtol=1e-5)
    np.testing.assert_allclose(best.fractions, np.linspace(0, 1, steps + 1))
    assert best.probabilities[-1] == pytest.approx(0.5)  # all removed: logits tie
    assert np.all(np.diff(best.probabilities) <= 1e-7)
    assert best.auc < worst.auc
    assert best.auc == pytest.approx(np.trapezoid(best.probabilities, best.fractions))


def test_overlay_shows_the_image_where_the_map_is_zero():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pixel_map = np.zeros((8, 8))
    pixel_map[2, 3] = 5.0
    pixel_map[6, 6] = -5.0
    positive = service.render_overlay(image, pixel_map, "positive", "jet", 0.8)
    assert np.array_equal(np.delete(positive.reshape(64, 3), [19], axis=0),
                          np.delete(image.reshape(64, 3), [19], axis=0))
    assert not np.array_equal(positive[2, 3], image[2, 3])
    absolute = service.render_overlay(image, pixel_map, "absolute", "jet", 0.8)
    assert not np.array_equal(absolute[6, 6], image[6, 6])
    assert np.array_equal(service.render_overlay(image, pixel_map, "all", "RdBu_r", 0.0), image)
    assert np.array_equal(service.render_overlay(image, np.zeros((8, 8)), "all", "jet", 1.0), image)
    with pytest.raises(ValueError, match="sign"):
        service.render_overlay(image, pixel_map, "negative")


def test_top5_names_and_target_by_name():
    names = service.class_names_for(1000)
    assert names[0] == "tench" and len(names) == 1000
    logits = torch.zeros(1, 1000)
    logits[0, 2] = 5.0
    top = service.top_predictions(logits, names)
    assert len(top) == 5 and top[0][:2] == (2, "great white shark")
    assert service.resolve_target("predicted class", names, 7) == 7
    assert service.resolve_target("Goldfish", names, 7) == 1
    assert service.resolve_target("1: goldfish", names, 7) == 1
    with pytest.raises(ValueError, match="no class named"):
        service.resolve_target("unicorn", names, 7)
    assert service.class_names_for(3) == ("class 0", "class 1", "class 2")


def test_layer_choices_match_the_model():
    model = resnext.build_model(TINY)
    names = [name for name, _ in model.named_blocks()]
    assert service.layer_choices(TINY) == model.stage_names + names
    assert service.resolve_layer(model, "") is model.layer4
    with pytest.raises(ValueError, match="no layer"):
        service.resolve_layer(model, "layer9")


def test_feature_map_grids_one_per_stage():
    model = resnext.build_model(TINY).eval()
    grids = service.feature_map_grids(model, torch.randn(1, 3, 32, 32), channels=6, tile=8)
    assert [g.stage for g in grids] == model.stage_names
    assert grids[0].image.shape == (2 * 8 + 2, 4 * 8 + 3 * 2, 3)  # 2 rows of 4 tiles
    assert len(grids[0].shown) == 6 and "channels at 8×8" in grids[0].caption


def test_sample_images_load():
    paths = sample_images()
    assert len(paths) >= 3
    prepared = prepare_image(str(paths[0]), "resnext50_32x4d.IMAGENET1K_V2", 224)
    assert prepared.shown.shape == (224, 224, 3) and prepared.tensor.shape == (1, 3, 224, 224)


# The weights panel ---------------------------------------------------------------------

SELECTION = Selection(TINY, 32)


def test_checkpoint_mismatch_is_listed(tmp_path):
    other = resnext.build_model(TINY.replace(num_classes=7, stage_blocks=(1, 1, 1)))
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(resnext.WeightsMismatchError) as info:
        choose_weights("upload", 0, None, str(path), SELECTION)
    message = str(info.value)
    assert "missing key(s): layer4.0" in message and "mis-shaped" in message and "fc.weight" in message


def test_unsafe_pickle_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"conv1.weight": Payload()}))
    with pytest.raises(resnext.CheckpointFileError, match="refused"):
        choose_weights("upload", 0, None, str(path), SELECTION)


def test_matching_checkpoint_is_used(tmp_path):
    model = resnext.build_model(TINY)
    randomize_batchnorm(model, torch.Generator().manual_seed(5))
    path = tmp_path / "good.pt"
    torch.save(model.state_dict(), path)
    choice = choose_weights("upload", 0, None, str(path), SELECTION)
    assert choice.kind == "upload" and len(choice.digest) == 64
    loaded = MODEL_CACHE.get(TINY, choice).model
    assert torch.equal(loaded.layer1[0].bn1.running_var, model.layer1[0].bn1.running_var)


def test_offline_imagenet_weights_say_what_to_do(tmp_path, monkeypatch):
    from resnext import weights as weights_module

    monkeypatch.setattr(weights_module, "hub_checkpoint_dir", lambda: tmp_path)

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(resnext.WeightsUnavailableError) as info:
        choose_weights("imagenet", 0, "resnext50_32x4d.IMAGENET1K_V2", None, SELECTION,
                       download=offline)
    message = str(info.value)
    assert "resnext50_32x4d-1a0047aa.pth" in message
    assert str(tmp_path / "resnext50_32x4d-1a0047aa.pth") in message
    assert "random weights and uploaded checkpoints still work" in message


def test_concurrent_requests_on_one_model_agree(monkeypatch):
    # Two users explaining on the same cached model at once (Guided Grad-CAM hooks every
    # ReLU) get what each would get alone: the tab holds the model's lock.
    from explorer.tabs import attributions as tab

    sample = str(sample_images()[0])
    args = dict(image=sample, method="guided_gradcam", target="predicted class", n_steps=8,
                baseline="black", internal_batch_size=4, n_samples=4, noise_level=0.15,
                smoothgrad_over="saliency", window=8, stride=8, layer="", device="cpu",
                sign="positive", colormap="inferno", opacity=0.6, selection=SELECTION,
                weights=WeightsChoice(seed=9), progress=None)
    alone = tab.run_attribution(**args)[5]["map"]
    results, errors = [], []

    def worker():
        try:
            results.append(tab.run_attribution(**args)[5]["map"])
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        np.testing.assert_allclose(result, alone, rtol=1e-5, atol=1e-7)


# Through the real HTTP API ---------------------------------------------------------------

@pytest.fixture(scope="module")
def session(app_url):
    """A fresh API session with a tiny config selected (the state lives per session)."""
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    client.predict(4, 2, "1, 1, 1, 1", "imagenet", "c", False, 10, 48, False, "resnet50",
                   api_name="/analyze")
    client.predict("random", 3, None, None, "cpu", api_name="/attr_weights")
    return client


def test_api_attribute_gradcam(session):
    from gradio_client import handle_file
    from PIL import Image

    overlay, top5, summary, plot, raw_map = session.predict(
        handle_file(str(sample_images()[0])), "gradcam", "predicted class", 8, "black", 4, 4,
        0.15, "saliency", 8, 8, "layer4", "cpu", "positive", "inferno", 0.6,
        api_name="/attribute")
    assert Image.open(overlay).size == (48, 48)
    assert len(top5["confidences"]) == 5
    assert "Grad-CAM" in summary and "deletion-curve AUC" in summary and "Untrained" in summary
    assert np.load(raw_map).shape == (1, 48, 48)


def test_api_grid_and_feature_maps(session):
    from gradio_client import handle_file

    sample = handle_file(str(sample_images()[1]))
    gallery, table, _ = session.predict(
        sample, "methods", ["saliency", "integrated_gradients"], "resnet50", "gradcam",
        "3: class 3", 8, "blurred", 4, 4, 0.15, "saliency", 8, 8, "", "cpu", "absolute",
        "jet", 0.6, api_name="/attribute_grid")
    assert len(gallery) == 2
    assert "Integrated Gradients" in table and "class 3" in table and "convergence" in table
    grids = session.predict(sample, "cpu", 4, api_name="/feature_maps")
    assert [g["caption"].split(":")[0] for g in grids] == ["layer1", "layer2", "layer3", "layer4"]


def test_api_reports_a_mismatched_checkpoint(session, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / "wrong.pth"
    torch.save(resnext.build_model(TINY.replace(num_classes=3)).state_dict(), path)
    with pytest.raises(AppError, match="mis-shaped key"):
        session.predict("upload", 0, None, handle_file(str(path)), "cpu", api_name="/attr_weights")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(AppError, match="not an image this app can read"):
        session.predict(handle_file(str(text)), "saliency", "predicted class", 8, "black", 4, 4,
                        0.15, "saliency", 8, 8, "", "cpu", "positive", "inferno", 0.6,
                        api_name="/attribute")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(sample_images()[0].read_bytes()[:600])
    with pytest.raises(AppError, match="corrupt or truncated"):
        session.predict(handle_file(str(truncated)), "saliency", "predicted class", 8, "black", 4, 4,
                        0.15, "saliency", 8, 8, "", "cpu", "positive", "inferno", 0.6,
                        api_name="/attribute")
