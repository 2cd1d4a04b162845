"""The Attributions tab: requests from the controls, the overlay and colour bar, the
weights panel's messages, runs' samples, and the tab's endpoints through the real HTTP API.
(One image's attribution itself: tests/test_explain_single.py.)"""

import pickle
import threading
import urllib.error

import numpy as np
import pytest
import torch

import resnext
from conftest import randomize_batchnorm
from explorer.selection import Selection
from resnext.explain import single as attribution
from explorer.shared import drawing
from explorer.attributions import figures
from explorer.shared import predictions
from explorer.shared.images import Preprocessing, prepare_image, sample_images
from explorer.shared.models import MODEL_CACHE, WeightsChoice
from explorer.attributions import explanation
from explorer.attributions.explanation import ATTRIBUTE_ARGUMENTS, ExplainRequest
from explorer.shared.predictions import percent
from explorer.shared.weights_choice import choose_weights

# 4 stages so every Grad-CAM layer kind exists; 10 classes so there is a top-5.
TINY = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2, stage_blocks=(1, 1, 1, 1),
                             num_classes=10)
FAST = dict(n_steps=8, n_samples=4, internal_batch_size=4, window=8, stride=8)


def test_overlay_shows_the_image_where_the_map_is_zero():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pixel_map = np.zeros((8, 8))
    pixel_map[2, 3] = 5.0
    pixel_map[6, 6] = -5.0
    positive = drawing.render_overlay(image, pixel_map, "positive", "jet", 0.8)
    assert np.array_equal(np.delete(positive.reshape(64, 3), [19], axis=0),
                          np.delete(image.reshape(64, 3), [19], axis=0))
    assert not np.array_equal(positive[2, 3], image[2, 3])
    absolute = drawing.render_overlay(image, pixel_map, "absolute", "jet", 0.8)
    assert not np.array_equal(absolute[6, 6], image[6, 6])
    assert np.array_equal(drawing.render_overlay(image, pixel_map, "all", "RdBu_r", 0.0), image)
    assert np.array_equal(drawing.render_overlay(image, np.zeros((8, 8)), "all", "coolwarm", 1.0), image)
    with pytest.raises(ValueError, match="Sign"):
        drawing.render_overlay(image, pixel_map, "negative")


def test_signed_maps_use_a_diverging_map_centred_on_zero():
    image = np.full((4, 4, 3), 128, dtype=np.uint8)
    pixel_map = np.zeros((4, 4))
    pixel_map[0, 0], pixel_map[3, 3] = 2.0, -2.0
    drawn = drawing.render_overlay(image, pixel_map, "all", "RdBu_r", 1.0)
    assert drawn[0, 0, 0] > drawn[0, 0, 2]  # positive: red end of RdBu_r
    assert drawn[3, 3, 2] > drawn[3, 3, 0]  # negative: blue end
    with pytest.raises(ValueError, match="Colour map: sign 'all' needs a diverging map"):
        drawing.render_overlay(image, pixel_map, "all", "inferno", 0.5)
    with pytest.raises(ValueError, match="Colour map: sign 'positive' needs a sequential map"):
        drawing.render_overlay(image, pixel_map, "positive", "RdBu_r", 0.5)
    assert drawing.colormaps_for("all") == drawing.DIVERGING_COLORMAPS
    assert "inferno" in drawing.colormaps_for("absolute")


def test_colour_bar_states_the_scale_of_the_map():
    rng = np.random.default_rng(3)
    pixel_map = rng.normal(size=(20, 20))
    scale = np.percentile(np.abs(pixel_map), 98)  # captum's default outlier cut: 2 %
    signed = figures.colour_bar_html(pixel_map, drawing.Display("all", "RdBu_r", 0.5))
    assert f"−{scale:.2g}" in signed and f"+{scale:.2g}" in signed and "linear-gradient" in signed
    positive = figures.colour_bar_html(pixel_map, drawing.Display("positive", "inferno", 0.5))
    assert f"{np.percentile(np.clip(pixel_map, 0, None), 98):.2g}" in positive
    # RdBu_r's middle stop is its neutral near-white: 0 sits in the middle of the bar.
    import re

    middle = re.search(r"rgb\((\d+), (\d+), (\d+)\) 50%", signed).groups()
    assert min(int(v) for v in middle) > 240


def test_deletion_chart_is_theme_safe():
    curve = attribution.DeletionCurve(np.linspace(0, 1, 3), np.array([0.5, 0.2, 0.1]), 0.25)
    layout = figures.deletion_figure([("Grad-CAM", curve)]).to_plotly_json()["layout"]
    assert layout["paper_bgcolor"] == "rgba(0,0,0,0)" and layout["plot_bgcolor"] == "rgba(0,0,0,0)"
    assert layout["font"]["color"] == "#7c828c"  # mid-grey: readable on light and dark pages
    assert layout["template"] == "none"  # no plotly_white underneath


def test_top5_names_and_target_by_name():
    names = predictions.class_names_for(1000)
    assert names[0] == "tench" and len(names) == 1000
    logits = torch.zeros(1, 1000)
    logits[0, 2] = 5.0
    top = predictions.top_predictions(logits, names)
    assert len(top) == 5 and top[0][:2] == (2, "great white shark")
    assert figures.resolve_target("predicted class", names, 7) == 7
    assert figures.resolve_target("Goldfish", names, 7) == 1
    assert figures.resolve_target("1: goldfish", names, 7) == 1
    with pytest.raises(ValueError, match="no class named"):
        figures.resolve_target("unicorn", names, 7)
    assert predictions.class_names_for(3) == ("class 0", "class 1", "class 2")


def test_feature_map_grids_one_per_stage():
    model = resnext.build_model(TINY).eval()
    grids = figures.feature_map_grids(model, torch.randn(1, 3, 32, 32), channels=6, tile=8)
    assert [g.stage for g in grids] == model.stage_names
    assert grids[0].image.shape == (2 * 8 + 2, 4 * 8 + 3 * 2, 3)  # 2 rows of 4 tiles
    assert len(grids[0].shown) == 6 and "channels at 8×8" in grids[0].caption


def test_sample_images_load():
    paths = sample_images()
    assert len(paths) >= 3
    prepared = prepare_image(str(paths[0]), Preprocessing.imagenet("resnext50_32x4d.IMAGENET1K_V2", 224))
    assert prepared.shown.shape == (224, 224, 3) and prepared.tensor.shape == (1, 3, 224, 224)
    # The same tensor as the library's preprocess (torchvision's eval transform).
    torch.testing.assert_close(prepared.tensor, resnext.preprocess(str(paths[0])))
    assert prepared.cut and prepared.mask is None
    from resnext.imaging import IMAGENET_MEAN, IMAGENET_STD

    assert (Preprocessing(1, 1).mean, Preprocessing(1, 1).std) == (IMAGENET_MEAN, IMAGENET_STD)


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
        choose_weights("imagenet", 0, "resnext50_32x4d.IMAGENET1K_V2", None,
                       Selection(resnext.PRESETS["resnext50_32x4d"], 224), download=offline)
    message = str(info.value)
    assert "resnext50_32x4d-1a0047aa.pth" in message
    assert str(tmp_path / "resnext50_32x4d-1a0047aa.pth") in message
    assert "random weights and uploaded checkpoints still work" in message


EXPLAIN_VALUES = dict(image=str(sample_images()[0]), method="guided_gradcam",
                      target="predicted class", n_steps=8, baseline="black",
                      internal_batch_size=4, n_samples=4, noise_level=0.15,
                      smoothgrad_over="saliency", window=8, stride=8, layer="", device="cpu",
                      sign="positive", colormap="inferno", opacity=0.6)


def test_concurrent_requests_on_one_model_agree():
    # Two users explaining on the same cached model at once (Guided Grad-CAM hooks every
    # ReLU) get what each would get alone: the service holds the model's lock.
    request = ExplainRequest.from_values(EXPLAIN_VALUES, SELECTION, WeightsChoice(seed=9))
    alone = explanation.explain(request).pixel_map
    results, errors = [], []

    def worker():
        try:
            results.append(explanation.explain(request).pixel_map)
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


# Settings, weights and images: what the page says --------------------------------------

@pytest.mark.parametrize("changes,message", [
    (dict(method="occlusion", window=8, stride=112),
     r"Occlusion stride \(112\) must not exceed the occlusion window \(8\)"),
    (dict(n_steps=513), r"IG steps must be an integer in \[2, 512\], got 513"),
    (dict(internal_batch_size=0), r"Internal batch size must be an integer in \[1, 64\], got 0"),
    (dict(n_samples=2.5), r"Samples \(SmoothGrad, GradientShap\) must be an integer"),
    (dict(noise_level=0.9), r"Noise \(share of the input range\) must be a number in \[0.01, 0.5\]"),
    (dict(baseline="grey"), r"Baseline must be one of black, blurred, noise"),
    (dict(method="lime"), r"Method: unknown method 'lime'"),
])
def test_refused_settings_name_their_control(changes, message):
    with pytest.raises(ValueError, match=message):
        ExplainRequest.from_values({**EXPLAIN_VALUES, **changes}, SELECTION, WeightsChoice())


def test_sliders_are_built_from_the_limits_the_service_enforces():
    import gradio as gr

    from explorer.attributions import tab

    with gr.Blocks():
        for name, limit in attribution.LIMITS.items():
            slider = tab._slider(name, limit.low)
            assert (slider.minimum, slider.maximum, slider.label) == (limit.low, limit.high,
                                                                      limit.label)
    defaults = attribution.AttributionSettings()
    assert defaults.noise_level == 0.15 and defaults.n_steps <= attribution.LIMITS["n_steps"].high


def test_percentages_keep_two_significant_figures():
    assert [percent(p) for p in (0.00112, 0.0123, 0.5, 0.873, 1.0, 0.0)] == [
        "0.11 %", "1.2 %", "50 %", "87 %", "100 %", "0 %"]


def test_imagenet_list_offers_only_weights_that_fit():
    from explorer.shared.weights_choice import imagenet_choices, no_imagenet_weights

    def names(preset, **changes):
        return imagenet_choices(Selection(resnext.PRESETS[preset].replace(**changes), 224))

    assert names("resnet50") == ["resnet50.IMAGENET1K_V2", "resnet50.IMAGENET1K_V1"]
    assert names("resnext50_32x4d", block_form="b") == [
        "resnext50_32x4d.IMAGENET1K_V2", "resnext50_32x4d.IMAGENET1K_V1"]
    assert names("resnext50_32x4d", num_classes=10) == []
    assert "no ImageNet weights for ResNeXt-152 (32x4d)" in no_imagenet_weights(
        Selection(resnext.PRESETS["resnext152_32x4d"], 224))
    with pytest.raises(ValueError, match="are for resnext50_32x4d, not for"):
        choose_weights("imagenet", 0, "resnext50_32x4d.IMAGENET1K_V2", None,
                       Selection(resnext.PRESETS["resnet50"], 224))


def test_status_follows_the_network_and_says_when_a_choice_is_not_applied():
    from explorer.shared.weights_choice import PanelValues, describe

    weights = WeightsChoice(seed=0)
    resnet = Selection(resnext.PRESETS["resnet50"], 64)
    assert "ResNet-50 (1x64d) at 64×64" in describe(weights, resnet)
    assert "Not applied yet" not in describe(weights, resnet, PanelValues("random", 0))
    pending = describe(weights, resnet, PanelValues("imagenet", 0, "resnet50.IMAGENET1K_V2"))
    assert "Not applied yet" in pending and "random (seed 0)" in pending
    imagenet = WeightsChoice(kind="imagenet", name="resnext50_32x4d.IMAGENET1K_V2")
    assert "which these weights do not fit" in describe(imagenet, resnet)


def test_the_summary_names_the_network_that_ran():
    small = Selection(TINY.replace(cardinality=2), 32)
    values = {**EXPLAIN_VALUES, "method": "saliency"}
    first = explanation.explain(ExplainRequest.from_values(values, SELECTION, WeightsChoice()))
    second = explanation.explain(ExplainRequest.from_values(values, small, WeightsChoice()))
    assert TINY.name in first.summary and small.config.name in second.summary
    assert "32×32 centre crop" in second.summary
    import re

    shown = [float(v) for v in re.findall(r">([0-9.]+) %<", second.top_html)]
    assert len(shown) == 5
    for value, (_, _, probability) in zip(shown, second.top):
        assert value == pytest.approx(100 * probability, rel=0.05)  # two significant figures


def test_crop_box_is_the_region_the_network_sees(tmp_path):
    from PIL import Image

    from explorer.shared.images import crop_box, crop_preview
    from resnext.imaging import resize_and_crop

    # A wide photo with a gradient: the crop's content tells where it came from.
    x = np.linspace(0, 255, 300)[None, :, None].repeat(120, axis=0).repeat(3, axis=2)
    photo = Image.fromarray(x.astype(np.uint8))
    left, top, right, bottom = crop_box(300, 120, resize_size=73, crop_size=64)
    assert (right - left, bottom - top) == pytest.approx((120 * 64 / 73,) * 2)
    seen = np.asarray(resize_and_crop(photo, 73, 64), dtype=float)
    reference = np.asarray(photo.crop((round(left), round(top), round(right), round(bottom)))
                           .resize((64, 64), Image.BILINEAR), dtype=float)
    assert np.abs(seen - reference).mean() < 3  # the same strip of the gradient
    path = tmp_path / "wide.png"
    photo.save(path)
    preview = crop_preview(str(path), Preprocessing.imagenet(None, 64))
    assert preview.shape == (120, 300, 3)
    assert preview[60, 5].sum() < np.asarray(photo)[60, 5].sum()  # outside: dimmed
    assert tuple(preview[60, round(left)]) == (255, 200, 0)  # the outline


def test_a_text_file_is_not_called_a_pickle(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("just some text, 23 byte")
    with pytest.raises(resnext.CheckpointFileError) as info:
        choose_weights("upload", 0, None, str(path), SELECTION)
    message = str(info.value)
    assert "it is not one" in message and "run code" not in message


def test_grid_requests_are_checked_once():
    from explorer.attributions.explanation import GridRequest

    values = {**EXPLAIN_VALUES, "mode": "methods", "methods": [], "compare_preset": "resnet50"}
    with pytest.raises(ValueError, match="Methods: tick at least one"):
        GridRequest.from_values(values, SELECTION, WeightsChoice())
    with pytest.raises(ValueError, match="Second config"):
        GridRequest.from_values({**values, "mode": "configs", "compare_preset": "vgg"},
                                SELECTION, WeightsChoice())
    assert list(ATTRIBUTE_ARGUMENTS[:3]) == ["image", "method", "target"]


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
    assert Image.open(overlay).size == (288, 288)  # 48 px enlarged 6×, to 288 px
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


@pytest.mark.parametrize("position,value,message", [
    (3, 999, "IG steps must be an integer in [2, 512], got 999"),
    (5, 0, "Internal batch size must be an integer in [1, 64], got 0"),
    (10, 112, "Occlusion stride (112) must not exceed the occlusion window (8)"),
    (15, 1.5, "Opacity must be a number in [0, 1], got 1.5"),
])
def test_api_range_errors_name_the_control(session, position, value, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    arguments = [handle_file(str(sample_images()[0])), "occlusion", "predicted class", 8,
                 "black", 4, 4, 0.15, "saliency", 8, 8, "", "cpu", "positive", "inferno", 0.6]
    arguments[position] = value
    with pytest.raises(AppError) as info:
        session.predict(*arguments, api_name="/attribute")
    assert message in str(info.value)


# Drawing without matplotlib at start-up ---------------------------------------------------

def test_colour_bar_stops_are_matplotlibs():
    import matplotlib

    assert set(drawing.COLOUR_STOPS) == set(drawing.COLORMAPS)
    for name, stops in drawing.COLOUR_STOPS.items():
        expected = np.array([matplotlib.colormaps[name](k / 10)[:3] for k in range(11)]) * 255
        assert np.abs(np.array(stops) - expected).max() <= 0.5, name


def test_building_the_colour_bar_imports_no_matplotlib():
    import subprocess
    import sys

    code = ("import sys; from explorer.attributions.figures import colour_bar_html; "
            "from explorer.shared.drawing import Display; "
            "colour_bar_html(None, Display()); colour_bar_html(None, Display('all', 'RdBu_r')); "
            "print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert done.stdout.strip() == "False"


# The object's outline and the share of the map inside it ----------------------------------

def test_object_share_and_outline_known_answers():
    from explorer.shared.drawing import outline

    mask = np.zeros((8, 8), dtype=bool)
    mask[2:5, 3:7] = True  # 12 of 64 pixels
    assert explanation.object_share(mask.astype(float), mask) == (1.0, 12 / 64)
    line = explanation.object_line(mask.astype(float), mask)
    assert "**100 %** of the positive attribution" in line and "19 % of the image" in line
    spill = mask.astype(float)
    spill[0, 0] = 4.0  # 12 inside, 4 outside
    assert explanation.object_share(spill, mask)[0] == pytest.approx(12 / 16)
    against = np.where(mask, 1.0, -5.0)  # evidence against the class is not "energy"
    assert explanation.object_share(against, mask)[0] == 1.0
    assert "**0 %**" in explanation.object_line(np.where(mask, 0.0, 1.0), mask)
    # Drawn: 8 px enlarged 36× to 288 px; cyan exactly on the enlarged mask's boundary.
    image = np.full((8, 8, 3), 90, dtype=np.uint8)
    display = drawing.Display("positive", "inferno", 0.5)
    plain = drawing.overlay_view(image, spill, display)
    drawn = drawing.overlay_view(image, spill, display, mask)
    assert drawn.shape == plain.shape == (288, 288, 3)
    boundary = outline(mask.repeat(36, 0).repeat(36, 1))
    assert (drawn[boundary] == drawing.OUTLINE_COLOUR).all()
    assert np.array_equal(drawn[~boundary], plain[~boundary])
    assert np.array_equal(plain[::36, ::36], drawing.render_overlay(image, spill, *display.__dict__.values()))
    assert drawing.overlay_view(np.zeros((224, 224, 3), np.uint8), np.zeros((224, 224)),
                                display).shape == (224, 224, 3)


# A trained run: its own preprocessing, classes, test images and object masks ---------------

RUN_CONFIG = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8,
                                   stage_blocks=(1, 1), stem="cifar", num_classes=6)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    from resnext import data, train

    run_dir = tmp_path_factory.mktemp("runs") / "run"
    pair = data.shapes(n_train=256, n_test=64, image_size=16)
    train.fit(RUN_CONFIG, pair, epochs=1, batch_size=64, out_dir=run_dir)
    return run_dir, pair


def _run_request(run_dir, image, **changes):
    from explorer.shared.weights_choice import run_weights

    weights, selection = run_weights(run_dir)
    values = {**EXPLAIN_VALUES, "image": str(image), "method": "saliency", "sign": "positive",
              **changes}
    return ExplainRequest.from_values(values, selection, weights)


def test_a_run_sees_its_test_image_as_it_was_trained(shapes_run):
    from safetensors.torch import load_file

    from explorer.shared.weights_choice import network_for, run_weights

    run_dir, pair = shapes_run
    weights, selection = run_weights(run_dir)
    network = network_for(weights, selection)
    assert network.class_names == pair.classes and len(network.samples) == 12
    # The reference: the run's saved weights and its first test image normalised by the
    # training set's mean and std, as resnext.train.engine feeds the network.
    model = resnext.build_model(RUN_CONFIG).eval()
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    mean = torch.tensor(pair.mean).view(1, 3, 1, 1)
    std = torch.tensor(pair.std).view(1, 3, 1, 1)
    x = (pair.test.images[:1].float() / 255 - mean) / std
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=1)[0]
    result = explanation.explain(_run_request(run_dir, network.samples[0]))
    assert result.top[0][0] == int(probabilities.argmax())
    for index, name, probability in result.top:
        assert name == pair.classes[index]
        assert probability == pytest.approx(float(probabilities[index]), rel=1e-4, abs=1e-6)
    assert np.array_equal(result.shown, pair.test.images[0].permute(1, 2, 0).numpy())
    assert "whole image" in result.summary and "centre crop" not in result.summary
    # "Black" is a black pixel under the run's statistics, not ImageNet's.
    black = attribution.make_baseline(x, "black", mean=pair.mean, std=pair.std)
    torch.testing.assert_close(black, ((0 - mean) / std).expand_as(x))


def test_an_upload_of_another_size_is_resized_to_the_runs(shapes_run, tmp_path):
    from PIL import Image

    from explorer.shared.weights_choice import network_for, run_weights

    run_dir, pair = shapes_run
    network = network_for(*run_weights(run_dir))
    prep = network.preprocessing
    assert (prep.resize_size, prep.crop_size) == (16, 16)
    image = pair.test.images[1].permute(1, 2, 0).numpy()
    square = tmp_path / "big.png"
    Image.fromarray(image.repeat(4, 0).repeat(4, 1)).save(square)
    prepared = prepare_image(str(square), prep, network.samples)
    assert prepared.shown.shape == (16, 16, 3) and not prepared.cut and prepared.mask is None
    # Resized to the run's 16 px as a whole (bilinear, as resnext.imaging resizes).
    resized = np.asarray(Image.open(square).resize((16, 16), Image.BILINEAR))
    assert np.array_equal(prepared.shown, resized)
    expected = (prepared.shown / 255 - np.array(pair.mean)) / np.array(pair.std)
    np.testing.assert_allclose(prepared.tensor[0].numpy().transpose(1, 2, 0), expected,
                               atol=1e-5)
    wide = tmp_path / "wide.png"
    Image.fromarray(np.concatenate([image, image], axis=1)).save(wide)
    assert prepare_image(str(wide), prep).cut  # a 32×16 photo loses its sides
    # The preview outlines the crop only when it cuts; small images are enlarged, sharp.
    from explorer.shared.images import crop_preview

    preview = crop_preview(str(square), prep)
    assert np.array_equal(preview, np.asarray(Image.open(square)).repeat(2, 0).repeat(2, 1))
    outlined = crop_preview(str(wide), prep)
    assert outlined.shape == (64, 128, 3)
    assert (outlined == (255, 200, 0)).all(axis=-1).any()


def test_a_runs_sample_gets_its_object_outline_and_share(shapes_run, tmp_path):
    import re
    import shutil

    from PIL import Image

    from explorer.shared.drawing import outline
    from explorer.shared.weights_choice import network_for, run_weights

    run_dir, pair = shapes_run
    sample = network_for(*run_weights(run_dir)).samples[2]
    # Gradio hands the tab a copy under another name: the sample is known by its pixels.
    copy = tmp_path / "upload.png"
    shutil.copy(sample, copy)
    result = explanation.explain(_run_request(run_dir, copy))
    mask = pair.test.masks[2].numpy()
    assert np.array_equal(result.mask, mask)
    pixel_map = np.load(result.map_path).sum(axis=0)
    from resnext.explain.metrics import energy_in_mask

    share = float(energy_in_mask(pixel_map[None], mask[None])[0])
    shown = re.search(r"\*\*(\d+) %\*\* of the positive attribution", result.summary).group(1)
    assert int(shown) == round(100 * share)
    boundary = outline(mask.repeat(18, 0).repeat(18, 1))  # 16 px shown at 288
    assert result.overlay.shape == (288, 288, 3)
    assert (result.overlay[boundary] == drawing.OUTLINE_COLOUR).all()
    # Redrawn with another colour map: the outline stays.
    redrawn, _ = explanation.redraw(result.redraw_state, drawing.Display("absolute", "viridis", 0.7))
    assert (redrawn[boundary] == drawing.OUTLINE_COLOUR).all()
    # One pixel changed: not the run's image, so nothing drawn and nothing claimed.
    pixels = np.asarray(Image.open(sample)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    other = tmp_path / "other.png"
    Image.fromarray(pixels).save(other)
    plain = explanation.explain(_run_request(run_dir, other))
    assert plain.mask is None and "positive attribution lies inside" not in plain.summary
    assert not (plain.overlay == drawing.OUTLINE_COLOUR).all(axis=-1).any()


def test_grid_compares_a_run_with_a_random_preset(shapes_run):
    from explorer.shared.weights_choice import run_weights, weights_for_preset

    weights, _ = run_weights(shapes_run[0])
    other, note = weights_for_preset(weights, "resnet50")
    assert other == WeightsChoice() and "fit its own network only" in note
