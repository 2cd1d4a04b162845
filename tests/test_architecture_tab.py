"""The Architecture tab's page handler writes back only the controls it changed, so an edit
made while its answer is on the way is never undone (Gradio then runs the pending event with
whatever the controls show). Handlers answer by name: an output left out keeps its value."""

import gradio as gr
import pytest

from explorer import components as ui
from explorer.selection import default_selection
from explorer.architecture.tab import SETTABLE, analyze_page, controls_of


def page_answer(*values, keep=False, baseline="resnet50"):
    sent = list(values)
    return analyze_page(*sent[:8], keep, baseline, sent[8], default_selection())


def written_controls(answer: dict) -> dict:
    return {name: value for name, value in answer.items() if name in SETTABLE}


def test_values_already_in_use_are_left_alone():
    selection = default_selection()
    sent = list(controls_of(selection).values())  # C, d, blocks, stem, form, grouped, ...
    answer = page_answer(*sent[:8], sent[9])
    # d: no value, so a typed d stays; only its lock follows keep complexity.
    assert written_controls(answer) == {"bottleneck_width": gr.update(interactive=True)}
    assert answer["selection"] == selection
    assert answer["link"].startswith("[Link to this network](?config=")


def test_values_the_handler_normalises_are_written():
    # Blocks as a person types them, 32.0 from a slider, and d set from C by Table 2's rule.
    answer = page_answer(32.0, 999, "3,4,6,3", "imagenet", "c", False, 1000, 224, 64, keep=True)
    assert written_controls(answer) == {
        "bottleneck_width": gr.update(interactive=False, value=4), "blocks_text": "3, 4, 6, 3"}
    assert answer["selection"].config.bottleneck_width == 4


def test_a_refused_value_puts_every_control_back():
    in_use = default_selection()
    answer = analyze_page(0, 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False,
                          "resnet50", 64, in_use)
    assert answer == {**controls_of(in_use), "depth": gr.update(value="50")}


class Box:
    """Stands in for a component: by_name only uses outputs as dict values."""


def test_by_name_maps_names_to_components_and_leaves_skips_alone():
    boxes = {"a": Box(), "b": Box()}
    wired = ui.by_name(lambda x: {"b": x} if x else gr.skip(), boxes)
    assert wired["outputs"] == [boxes["a"], boxes["b"]]
    assert wired["fn"](5) == {boxes["b"]: 5}
    assert wired["fn"](0) == gr.skip()
    with pytest.raises(KeyError, match=r"\['c'\]"):
        ui.by_name(lambda: {"c": 1}, boxes)["fn"]()
