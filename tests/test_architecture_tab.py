"""The Architecture tab's page handler writes back only the controls it changed, so an edit
made while its answer is on the way is never undone (Gradio then runs the pending event with
whatever the controls show)."""

import gradio as gr

from explorer.selection import default_selection
from explorer.architecture.tab import analyze_page, controls_of

SKIP = gr.skip()


def page_answer(*values, keep=False, baseline="resnet50"):
    sent = list(values)
    return analyze_page(*sent[:8], keep, baseline, sent[8], default_selection())


def test_values_already_in_use_are_left_alone():
    selection = default_selection()
    sent = controls_of(selection)  # C, d, blocks, stem, form, grouped, classes, size, keep, base
    answer = page_answer(*sent[:8], sent[9])
    controls = answer[1:11]
    assert [c for i, c in enumerate(controls) if i != 1] == [SKIP] * 9
    assert controls[1] == gr.update(interactive=True)  # d: no value, so a typed d stays
    assert answer[0] == selection


def test_values_the_handler_normalises_are_written():
    # Blocks as a person types them, 32.0 from a slider, and d set from C by Table 2's rule.
    answer = page_answer(32.0, 999, "3,4,6,3", "imagenet", "c", False, 1000, 224, 64, keep=True)
    controls = answer[1:11]
    assert controls[0] == SKIP  # 32.0 is 32
    assert controls[1] == gr.update(interactive=False, value=4)
    assert controls[2] == "3, 4, 6, 3"
    assert controls[3:] == [SKIP] * 7
    assert answer[0].config.bottleneck_width == 4


def test_a_refused_value_puts_every_control_back():
    in_use = default_selection()
    answer = analyze_page(0, 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False,
                          "resnet50", 64, in_use)
    assert answer[1:11] == controls_of(in_use)
