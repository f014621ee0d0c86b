"""vizlab.stats against values computed independently.

Reference numbers: closed forms where the t distribution has one (df = 1 is the Cauchy
distribution, df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2))), published table quantiles, and
values computed once with scipy 1.16 (stats.t.ppf, stats.t.cdf, stats.ttest_rel,
stats.t.interval, stats.permutation_test with n_resamples=inf) and pasted here as literals, so the
test needs no scipy.
"""

from __future__ import annotations

import math

import pytest

from vizlab.stats import (
    betainc,
    holm,
    mean_interval,
    paired_t,
    sign_flip_p,
    t_cdf,
    t_quantile,
)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.3, 0.0, 0.7, 4.0, 120.0])
def test_t_cdf_matches_the_closed_forms_of_df_1_and_2(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-13)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-13)


@pytest.mark.parametrize("df, expected", [
    (1, 12.706204736174694), (2, 4.302652729749462), (3, 3.1824463052837078),
    (4, 2.7764451051977934), (5, 2.5705818356363146), (9, 2.262157162798205),
    (29, 2.045229642132703), (100, 1.9839715185235518),
])
def test_t_quantile_975(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, rel=1e-11)
    assert t_quantile(0.025, df) == pytest.approx(-expected, rel=1e-11)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-13)


@pytest.mark.parametrize("df, t, expected", [
    (3, -2.1, 0.0632826012748423), (5, -2.1, 0.044876624942299395),
    (29, -2.1, 0.022270979018145207), (4, 1.3, 0.868274201764388),
])
def test_t_cdf_against_scipy(df, t, expected):
    assert t_cdf(t, df) == pytest.approx(expected, rel=1e-12)


def test_betainc_edges_and_symmetry():
    assert betainc(2.0, 3.0, 0.0) == 0.0 and betainc(2.0, 3.0, 1.0) == 1.0
    # I_x(a, b) = 1 - I_{1-x}(b, a); I_x(1, 1) = x; I_x(2, 1) = x^2
    assert betainc(2.5, 0.5, 0.3) == pytest.approx(1 - betainc(0.5, 2.5, 0.7), abs=1e-14)
    assert betainc(1.0, 1.0, 0.37) == pytest.approx(0.37, abs=1e-14)
    assert betainc(2.0, 1.0, 0.6) == pytest.approx(0.36, abs=1e-14)


def test_mean_interval_is_student_t():
    values = [97.1, 97.5, 96.9, 97.3]
    mean, low, high = mean_interval(values)
    assert mean == pytest.approx(97.2)
    assert (low, high) == pytest.approx((96.78914794864791, 97.6108520513521), abs=1e-11)
    # Wider than the normal approximation a fixed z = 1.96 gives.
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    assert high - mean > 1.96 * sd / 2
    assert mean_interval([98.0]) == (98.0, None, None)


def test_paired_t_against_scipy():
    a, b = [97.1, 97.5, 96.9, 97.3], [96.2, 97.0, 96.8, 96.1]
    test = paired_t(a, b)
    assert test.n == 4
    assert test.mean_diff == pytest.approx(0.675)
    assert test.t == pytest.approx(2.82005802648233, rel=1e-12)
    assert test.p == pytest.approx(0.06673517799212102, rel=1e-10)
    half = 3.1824463052837078 * 0.47871355387816905 / 2  # t(0.975, 3) * sd / sqrt(n)
    assert (test.diff_low, test.diff_high) == pytest.approx((0.675 - half, 0.675 + half))
    assert test.p_sign_flip == 0.125  # 2 of the 16 sign patterns reach |sum| >= 2.7


def test_paired_t_degenerate_differences():
    same = paired_t([90.0, 91.0, 92.0], [90.0, 91.0, 92.0])
    assert same.p == 1.0 and same.t == 0.0 and same.p_sign_flip == 1.0
    shifted = paired_t([91.0, 92.0, 93.0], [90.0, 91.0, 92.0])
    assert shifted.p == 0.0 and shifted.t == math.inf
    assert shifted.p_sign_flip == 0.25  # the smallest an exact test can give with 3 seeds
    with pytest.raises(ValueError):
        paired_t([1.0], [2.0])


def test_sign_flip_exact_counts():
    # Differences 1, 2, 3: sums over the 8 sign patterns are +-6, +-4, +-2, +-0:
    # |sum| >= 6 in 2 of 8.
    assert sign_flip_p([1.0, 2.0, 3.0]) == 0.25
    # 1, 1, 1, -1: |sum| = 2; patterns with |sum| >= 2: all but the 6 with sum 0 -> 10 / 16.
    assert sign_flip_p([1.0, 1.0, 1.0, -1.0]) == 10 / 16
    # Beyond the exact range, the seeded estimate is close to the exact smallest value.
    assert sign_flip_p([1.0] * 20) == pytest.approx(1 / 20_001, abs=1e-9)


def test_holm_by_hand():
    # Sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> kept at 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
