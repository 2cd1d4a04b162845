"""Controls -> Selection: the one place where the UI's values become a ResNeXtConfig."""

import math

import pytest

import resnext
from explorer.selection import (
    CUSTOM,
    DEPTH_CHOICES,
    Selection,
    default_selection,
    depth_choice,
    parse_blocks,
    selection_from_controls,
)


def controls(**changes):
    values = dict(cardinality=32, bottleneck_width=4, blocks_text="3, 4, 6, 3", stem="imagenet",
                  block_form="c", grouped_reduce=False, num_classes=1000, image_size=224,
                  keep_complexity=False)
    values.update(changes)
    return values


def test_default_controls_are_resnext50():
    selection = selection_from_controls(**controls())
    assert selection.config == resnext.PRESETS["resnext50_32x4d"]
    assert selection.preset == "resnext50_32x4d"


def test_slider_floats_become_ints():
    selection = selection_from_controls(**controls(cardinality=32.0, bottleneck_width=8.0,
                                                   num_classes=1000.0, image_size=224.0,
                                                   blocks_text="3 4 23 3"))
    assert selection.preset == "resnext101_32x8d"


def test_keep_complexity_sets_d_from_table_2():
    for c, d in {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}.items():
        selection = selection_from_controls(**controls(cardinality=c, bottleneck_width=99,
                                                       keep_complexity=True))
        assert selection.config.bottleneck_width == d


@pytest.mark.parametrize("changes,fragment", [
    (dict(cardinality=0), "cardinality C must be an integer in [1, 1024], got 0"),
    (dict(cardinality=2.5), "cardinality C must be an integer"),
    (dict(cardinality=math.nan), "cardinality C must be an integer in [1, 1024], got nan"),
    (dict(cardinality=2000), "cardinality C must be an integer in [1, 1024], got 2000"),
    (dict(bottleneck_width=-1), "bottleneck width d must be an integer in [1, 1024], got -1"),
    (dict(num_classes=0), "classes must be an integer in [1, 100000], got 0"),
    (dict(base_planes=0), "base width must be an integer in [1, 1024], got 0"),
    (dict(blocks_text="3,,4"), "blocks per stage '3,,4' has an empty entry"),
    (dict(blocks_text="3, 4,"), "has an empty entry"),
    (dict(image_size=8), "input resolution must be an integer in [16, 1024], got 8"),
    (dict(image_size=math.inf), "input resolution must be an integer in [16, 1024], got inf"),
    (dict(blocks_text=""), "blocks per stage is empty"),
    (dict(blocks_text="3, four, 6"), "'four' is not one"),
    (dict(blocks_text="3, 4, 6, 3, 3, 3, 3"), "stage_blocks must have 1 to 6 stages, got 7"),
    (dict(blocks_text="3, 400"), "stage_blocks[1] must be an integer in [1, 64], got 400"),
    (dict(stem="vgg"), "stem must be one of"),
    (dict(block_form="z"), "block_form must be one of"),
    (dict(grouped_reduce="yes"), "grouped_reduce must be True or False"),
])
def test_bad_controls_say_what_and_why(changes, fragment):
    with pytest.raises(ValueError) as info:
        selection_from_controls(**controls(**changes))
    assert fragment in str(info.value)


def test_values_the_config_allows_are_used_as_given():
    # The sliders' limits are the library's: C = 1000 is a valid network, not a slider end.
    selection = selection_from_controls(**controls(cardinality=1000, bottleneck_width=1))
    assert selection.config.cardinality == 1000
    assert selection_from_controls(**controls(base_planes=16)).config.base_planes == 16


def test_a_link_holds_the_selection():
    selection = Selection(resnext.PRESETS["resnext29_8x64d"].replace(block_form="b"), 48)
    query = selection.link_query()
    assert query.startswith("?config=")
    import urllib.parse

    params = dict(urllib.parse.parse_qsl(query[1:]))
    assert Selection.from_link(params) == selection
    assert Selection.from_link({}) is None
    assert Selection.from_link(dict(urllib.parse.parse_qsl(
        default_selection().link_query()[1:]))) == default_selection()
    with pytest.raises(ValueError, match="cardinality"):
        Selection.from_link({"config": '{"cardinality": 0}'})
    with pytest.raises(ValueError, match="not a JSON object"):
        Selection.from_link({"config": "32x4d"})


def test_depth_choices_map_to_layouts():
    assert DEPTH_CHOICES == ["26", "29", "38", "50", "101", "152", "200", CUSTOM]
    assert depth_choice((3, 8, 36, 3)) == "152"
    assert depth_choice((3, 4, 36, 3)) == CUSTOM
    assert parse_blocks("[3,4,6,3]") == (3, 4, 6, 3)


def test_json_round_trip_and_errors():
    selection = Selection(resnext.PRESETS["resnext29_16x64d"], 32)
    assert Selection.from_json(selection.to_json()) == selection
    with pytest.raises(ValueError, match="not valid JSON"):
        Selection.from_json("{cardinality: 3")
    with pytest.raises(ValueError, match="must be a JSON object"):
        Selection.from_json("[1]")
    with pytest.raises(ValueError, match="input resolution must be an integer"):
        Selection.from_json('{"image_size": 5000}')
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['depth'\]"):
        Selection.from_json('{"depth": 50}')


def test_guarded_components_name_themselves():
    import gradio as gr

    from explorer import components as ui

    with gr.Blocks():
        slider = ui.Slider(1, 128, step=1, label="Cardinality C")
        radio = ui.Radio(["imagenet", "cifar"], label="Stem")
    # Drawn by the frontend as the built-in components; Gradio's per-session copies
    # (`block.__class__(**props)`) keep the guard.
    assert slider.get_block_name() == "slider" and radio.get_block_name() == "radio"
    copy = type(slider)(**{k: getattr(slider, k) for k in ("minimum", "maximum", "label")})
    assert copy.preprocess(1000) == 1000
    for bad in (math.nan, math.inf, "abc", True, [1]):
        with pytest.raises(gr.Error, match=r"Cardinality C: expected a number in \[1, 128\]"):
            slider.preprocess(bad)
    # Out of the control's range: passed on for the handler's own check (which names the
    # control and, on the page, puts it back), instead of an error that badges every output.
    assert slider.preprocess(0) == 0 and slider.preprocess(1000) == 1000
    assert slider.preprocess(32) == 32
    with pytest.raises(gr.Error, match="Stem: "):
        radio.preprocess("<b>resnet</b>")
    assert radio.preprocess("cifar") == "cifar"
