"""What a study is, checked before anything trains: knob values, keep-complexity widths (the
paper's Table 2 and brute force over every d), spec validation and the CLI's messages."""

import json

import pytest

import resnext
from resnext import PRESETS, ResNeXtConfig, complexity
from resnext.study import StudySpec, data_spec, knobs
from resnext.study.__main__ import main

TINY = ResNeXtConfig(cardinality=1, bottleneck_width=64, base_planes=16, stage_blocks=(1, 1, 1),
                     stem="cifar", num_classes=6)
TINY_DATA = data_spec("shapes", train_size=32, test_size=16, image_size=16)


# Keep complexity ---------------------------------------------------------------------------

def test_keep_complexity_reproduces_table_2_on_resnet50():
    """Paper Table 2 (facts.md): C = 1, 2, 4, 8, 32 -> d = 64, 40, 24, 14, 4."""
    widths = [knobs.matching_width(PRESETS["resnet50"], c) for c in (1, 2, 4, 8, 32)]
    assert widths == [64, 40, 24, 14, 4]


def _brute_force(base, cardinality, image_size):
    target = complexity(base, image_size).params
    low, high = knobs.width_range(base, cardinality)
    costs = {d: complexity(base.replace(cardinality=cardinality, bottleneck_width=d),
                           image_size).params for d in range(low, high + 1)}
    best = min(abs(cost - target) for cost in costs.values())
    return min(d for d, cost in costs.items() if abs(cost - target) == best)


@pytest.mark.parametrize("base, image_size", [
    (TINY, 32), (TINY.replace(base_planes=32, stage_blocks=(2, 1, 1)), 16),
    (TINY.replace(cardinality=4, bottleneck_width=16, stem="imagenet"), 64),
    (TINY.replace(base_planes=8, bottleneck_width=16), 16)])
@pytest.mark.parametrize("cardinality", [1, 2, 3, 4, 8, 16, 32])
def test_keep_complexity_is_the_closest_width_over_every_d(base, image_size, cardinality):
    """The bisection's answer equals a scan of every allowed d (narrowest of ties)."""
    assert knobs.matching_width(base, cardinality, image_size) == _brute_force(
        base, cardinality, image_size)


def test_keep_complexity_gives_sensible_widths_on_a_small_cifar_network():
    widths = [knobs.matching_width(TINY, c, 32) for c in (1, 2, 4, 8)]
    assert widths[0] == 64 and widths == sorted(widths, reverse=True)
    target = complexity(TINY, 32).params
    for c, d in zip((1, 2, 4, 8), widths):
        params = complexity(TINY.replace(cardinality=c, bottleneck_width=d), 32).params
        assert abs(params / target - 1) < 0.04  # the cost the study holds fixed


def test_largest_width_stays_within_the_budget():
    budget = complexity(TINY, 32).macs
    d = knobs.largest_width(TINY, 4, budget, 32)
    assert complexity(TINY.replace(cardinality=4, bottleneck_width=d), 32).macs <= budget
    assert complexity(TINY.replace(cardinality=4, bottleneck_width=d + 1), 32).macs > budget
    assert knobs.largest_width(TINY, 4, 10, 32) is None


# Knob values -------------------------------------------------------------------------------

def test_values_parse_per_knob():
    assert knobs.parse_values("cardinality", "1, 2,4") == (1, 2, 4)
    assert knobs.parse_values("blocks", "1,1,1; 2,2,2") == ("1,1,1", "2,2,2")
    assert knobs.parse_values("block_form", "a,c") == ("a", "c")
    assert knobs.parse_values("depth", [11, 20]) == (11, 20)


@pytest.mark.parametrize("knob, text, message", [
    ("width", "1", "--knob must be one of"),
    ("cardinality", "", "--values is empty"),
    ("cardinality", "1,2,2", "repeats 2"),
    ("cardinality", "1,x", "whole numbers, got 'x'"),
    ("cardinality", [1.5], "whole numbers, got 1.5"),
    ("blocks", "1,a", "must look like 3,4,6,3"),
    ("block_form", "d", "one of a, b, c"),
])
def test_bad_values_are_refused_by_name(knob, text, message):
    with pytest.raises(ValueError, match=message):
        knobs.parse_values(knob, text)


def test_each_knob_builds_its_network():
    assert knobs.config_for(TINY, "depth", 20).stage_blocks == (2, 2, 2)
    assert knobs.config_for(TINY, "depth", 29).stage_blocks == (3, 3, 3)  # the paper's CIFAR
    assert knobs.config_for(PRESETS["resnet50"], "depth", 101).stage_blocks == (3, 4, 23, 3)
    assert knobs.config_for(TINY, "blocks", "2,1,1").stage_blocks == (2, 1, 1)
    assert knobs.config_for(TINY, "base_planes", 32).base_planes == 32
    assert knobs.config_for(TINY, "block_form", "a").block_form == "a"
    assert knobs.config_for(TINY, "cardinality", 4).bottleneck_width == 64
    assert knobs.config_for(TINY, "cardinality", 4, True, 32).bottleneck_width == 25


@pytest.mark.parametrize("knob, value, message", [
    ("depth", 14, "depth = 14 gives no valid network: depth 14 has no layout with 3 stages"),
    ("bottleneck_width", 2, "bottleneck_width = 2 gives no valid network"),
    ("blocks", "1,1,1,1,1,1,1", "blocks = 1,1,1,1,1,1,1 gives no valid network"),
])
def test_a_value_without_a_network_is_named(knob, value, message):
    with pytest.raises(ValueError, match=message):
        knobs.config_for(TINY, knob, value)


# The spec ----------------------------------------------------------------------------------

def spec(**changes):
    values = dict(name="s1", base=TINY, knob="cardinality", values=(1, 2), seeds=(0, 1),
                  data=TINY_DATA, epochs=1, methods=("gradcam",), n_images=8)
    values.update(changes)
    return StudySpec(**values)


@pytest.mark.parametrize("changes, message", [
    ({"name": "a b"}, "study name must be"),
    ({"name": ""}, "study name must be"),
    ({"knob": "depth", "keep_complexity": True}, "--keep-complexity applies to --knob cardinality"),
    ({"seeds": (0, 0)}, "--seeds repeats"),
    ({"seeds": ()}, "--seeds must list 1 to"),
    ({"seeds": (-1,)}, "--seeds must be an integer in"),
    ({"epochs": 0}, "--epochs must be an integer in"),
    ({"heartbeat": 5, "grace": 5}, "--grace must be an integer in \\[6,"),
    ({"methods": ("gradcam", "xray")}, "unknown method\\(s\\) xray"),
    ({"lr": -1.0}, "--lr must be a positive number"),
])
def test_spec_refuses_bad_fields_by_their_flag(changes, message):
    with pytest.raises(ValueError, match=message):
        spec(**changes)


def test_spec_survives_its_json_round_trip():
    original = spec(keep_complexity=True, values=(1, 2, 4))
    stored = json.loads(json.dumps(original.to_dict()))
    assert StudySpec.from_dict(stored) == original
    blocks = spec(knob="blocks", values="1,1,1;2,1,1")
    assert StudySpec.from_dict(json.loads(json.dumps(blocks.to_dict()))) == blocks


def test_grid_lists_every_value_and_seed_once_seed_by_seed():
    assert spec().grid() == [{"value": 1, "seed": 0}, {"value": 2, "seed": 0},
                             {"value": 1, "seed": 1}, {"value": 2, "seed": 1}]


def test_plan_gives_each_point_its_cost_relative_to_the_base():
    planned = resnext.study.plan(spec(values=(1, 2, 4, 8), keep_complexity=True))
    assert planned["trials"] == 8
    base = complexity(TINY, 16)
    for point in planned["points"]:
        cfg = ResNeXtConfig.from_dict(point["config"])
        assert point["macs"] == complexity(cfg, 16).macs
        assert point["params_ratio"] == pytest.approx(point["params"] / base.params)
    assert any("seed" in note for note in planned["notes"])  # 2 seeds: wide intervals


def test_plan_names_a_value_that_gives_no_network():
    with pytest.raises(ValueError, match="bottleneck_width = 1 gives no valid network"):
        resnext.study.plan(spec(knob="bottleneck_width", values=(16, 1)))
    with pytest.raises(ValueError, match="--recipe must be one of"):
        resnext.study.plan(spec(recipe="fast"))


def test_data_spec_names_the_flag():
    with pytest.raises(ValueError, match="--data must be shapes, shapes-shortcut, shapes-distractors, cifar10"):
        data_spec("mnist")
    with pytest.raises(ValueError, match="needs --data-root"):
        data_spec("cifar10")
    assert data_spec("folder:/photos", image_size=48)["root"] == "/photos"


def test_create_refuses_a_base_whose_classes_do_not_fit_the_data(tmp_path):
    with pytest.raises(ValueError, match="num_classes=10 but shapes has 6 classes"):
        resnext.study.create(spec(base=TINY.replace(num_classes=10)), runs_dir=tmp_path)


# The CLI -----------------------------------------------------------------------------------

CREATE = ["create", "c1", "--knob", "cardinality", "--values", "1,2", "--seeds", "0,1",
          "--data", "shapes", "--epochs", "1", "--train-size", "32", "--test-size", "16",
          "--image-size", "16", "--methods", "gradcam", "--n-images", "8"]


@pytest.mark.parametrize("change, message", [
    (["--values", "1,2,2"], "--values repeats 2"),
    (["--seeds", "0,a"], "--seeds must be whole numbers"),
    (["--keep-complexity", "--knob", "depth", "--values", "11"], "--keep-complexity applies"),
    (["--config", "{not json"], "--config is not valid JSON"),
    (["--data", "mnist"], "--data must be shapes, shapes-shortcut, shapes-distractors, cifar10"),
    (["--methods", "xray"], "unknown method"),
    (["--knob", "bottleneck_width", "--values", "1"], "bottleneck_width = 1 gives no valid"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, change, message):
    code = main(CREATE + ["--runs-dir", str(tmp_path)] + change)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert err.startswith("error: ")


def test_cli_refuses_a_second_study_of_the_same_name(tmp_path, capsys):
    assert main(CREATE + ["--runs-dir", str(tmp_path)]) == 0
    assert "4 trials queued" in capsys.readouterr().out
    assert main(CREATE + ["--runs-dir", str(tmp_path)]) == 2
    assert "a study named 'c1' already exists" in capsys.readouterr().err


def test_cli_show_of_an_unknown_study_lists_the_known_ones(tmp_path, capsys):
    assert main(CREATE + ["--runs-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["show", "nope", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and "it holds c1" in err


def test_cli_storage_that_cannot_be_opened_is_named(tmp_path, capsys):
    code = main(["show", "x", "--storage", "nosuchdb://u:secret@h/db", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--storage nosuchdb://u:***@h/db" in err and "secret" not in err


def test_no_submodule_shadows_a_public_function():
    """`resnext.study.report` must stay the function once `resnext.study.reporting` (or any
    other submodule) has been imported: a module named like a function replaces it."""
    import importlib
    import inspect
    import pkgutil

    package = resnext.study
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "__main__":
            importlib.import_module(f"resnext.study.{module.name}")
    for name in package._LAZY:
        assert not inspect.ismodule(getattr(package, name)), name
