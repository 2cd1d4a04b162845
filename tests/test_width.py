import re

import pytest

import resnext
from resnext.complexity import block_template_params


def test_reproduces_table_2():
    # Paper Table 2: C = 1, 2, 4, 8, 32 -> d = 64, 40, 24, 14, 4; C*d = 64, 80, 96, 112, 128.
    table = {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}
    for c, d in table.items():
        assert resnext.preserving_width(c) == d
    assert [c * d for c, d in table.items()] == [64, 80, 96, 112, 128]


def test_template_params_of_resnet50():
    assert block_template_params(1, 64) == 69_632


@pytest.mark.parametrize("c", [3, 5, 6, 12, 16, 24, 48, 64, 100, 256, 1024])
def test_any_cardinality_is_the_nearest_integer_solution(c):
    d = resnext.preserving_width(c)
    target = block_template_params(1, 64)
    best = min(range(1, 80), key=lambda w: abs(block_template_params(c, w) - target))
    # Rounding the real root can differ from the closest-cost integer only by one.
    assert abs(d - best) <= 1
    assert d >= 1


def test_other_reference_and_bad_input():
    assert resnext.preserving_width(1, reference="resnext50_32x4d") == resnext.preserving_width(
        1, reference=resnext.PRESETS["resnext101_32x4d"])
    assert resnext.preserving_width(32, reference="resnext50_32x4d") == 4
    with pytest.raises(ValueError, match=re.escape("cardinality must be an integer in [1, 1024], got 0")):
        resnext.preserving_width(0)
    with pytest.raises(ValueError, match="reference must be a preset name"):
        resnext.preserving_width(4, reference="vgg16")
