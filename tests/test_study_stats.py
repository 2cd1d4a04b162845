"""resnext.study.stats against independent references: the printed t table (Student's t,
two-sided 95 % and 99 %), the closed-form CDFs of df = 1 (Cauchy) and df = 2, and intervals
worked out by hand."""

import math

import pytest

from resnext.study import stats

# t(p, df) from the standard table (e.g. NIST/SEMATECH e-Handbook, Table 1.3.6.7.2).
TABLE = [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 3, 3.1824), (0.975, 4, 2.7764),
    (0.975, 5, 2.5706), (0.975, 10, 2.2281), (0.975, 20, 2.0860), (0.975, 30, 2.0423),
    (0.975, 100, 1.9840), (0.995, 5, 4.0321), (0.95, 9, 1.8331), (0.9, 3, 1.6377),
]


@pytest.mark.parametrize("p, df, expected", TABLE)
def test_t_quantile_matches_the_printed_table(p, df, expected):
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=5e-5)


def test_t_quantile_tends_to_the_normal_and_is_symmetric():
    assert stats.t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert stats.t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=5e-5)
    assert stats.t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("t", [-7.5, -1.0, 0.0, 0.3, 2.0, 40.0])
def test_t_cdf_matches_the_closed_forms_of_df_1_and_2(t):
    assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_t_quantile_inverts_the_cdf_at_fractional_df_as_welch_needs():
    for df in (1.3, 2.94, 7.5):
        assert stats.t_cdf(stats.t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-12)
    # between its integer neighbours, falling with df
    assert stats.t_quantile(0.975, 3) < stats.t_quantile(0.975, 2.5) < stats.t_quantile(0.975, 2)


def test_summary_of_three_seeds_by_hand():
    # mean 0.82, sd 0.02, half width 4.302653 * 0.02 / sqrt(3) = 0.049683
    result = stats.summary([0.80, 0.84, 0.82])
    assert result["n"] == 3 and result["mean"] == pytest.approx(0.82)
    assert result["sd"] == pytest.approx(0.02)
    assert result["ci95"] == pytest.approx([0.770317, 0.869683], abs=1e-6)


def test_one_seed_has_no_interval_and_none_has_no_mean():
    assert stats.summary([0.7]) == {"mean": 0.7, "ci95": None, "sd": None, "n": 1}
    assert stats.summary([]) == {"mean": None, "ci95": None, "sd": None, "n": 0}


def test_welch_difference_by_hand():
    # a: mean 0.82, var 4e-4; b: mean 0.71, var 1e-4; n = 3 each.
    # se^2 = (4e-4 + 1e-4) / 3; df = se^4 / ((4e-4/3)^2/2 + (1e-4/3)^2/2) = 2.9412
    result = stats.difference([0.80, 0.84, 0.82], [0.70, 0.72, 0.71])
    se = math.sqrt(5e-4 / 3)
    df = se ** 4 / (((4e-4 / 3) ** 2 + (1e-4 / 3) ** 2) / 2)
    assert result["df"] == pytest.approx(df) and df == pytest.approx(2.941176, abs=1e-6)
    half = stats.t_quantile(0.975, df) * se
    assert result["difference"] == pytest.approx(0.11)
    assert result["ci95"] == pytest.approx([0.11 - half, 0.11 + half])
    assert result["supported"] is True


def test_overlapping_seeds_give_an_unsupported_difference():
    result = stats.difference([0.80, 0.84, 0.82], [0.79, 0.83, 0.85])
    assert result["ci95"][0] < 0 < result["ci95"][1]
    assert result["supported"] is False


def test_a_difference_without_two_seeds_a_side_is_undecided():
    result = stats.difference([0.9], [0.5, 0.6])
    assert result["difference"] == pytest.approx(0.35)
    assert result["ci95"] is None and result["supported"] is None


def test_identical_seeds_give_a_point_interval():
    assert stats.difference([0.5, 0.5], [0.5, 0.5])["supported"] is False
    assert stats.difference([0.6, 0.6], [0.5, 0.5])["supported"] is True


def test_pooled_sd_skips_single_seed_points():
    # variances 4e-4 (df 2) and 1e-4 (df 2): pooled sqrt(2.5e-4)
    pooled = stats.pooled_sd([[0.80, 0.84, 0.82], [0.70, 0.72, 0.71], [0.5]])
    assert pooled == pytest.approx(math.sqrt(2.5e-4))
    assert stats.pooled_sd([[0.5], []]) is None


def test_seeds_needed_is_the_smallest_n_whose_interval_is_narrow_enough():
    # sd 2 points, delta 2 points: n = 9 (t(16) sqrt(2/9) = 0.9998 < 1; n = 8: 1.0724)
    assert stats.seeds_needed(0.02, 0.02) == 9
    for sd in (0.005, 0.013, 0.03, 0.08):
        n = stats.seeds_needed(sd, 0.02)
        assert stats.t_quantile(0.975, 2 * n - 2) * sd * math.sqrt(2 / n) < 0.02
        if n > 2:
            m = n - 1
            assert stats.t_quantile(0.975, 2 * m - 2) * sd * math.sqrt(2 / m) >= 0.02
    assert stats.seeds_needed(None) is None and stats.seeds_needed(0.0) == 2
    with pytest.raises(ValueError, match="delta"):
        stats.seeds_needed(0.02, 0)
