"""The few formulas an honest comparison of a handful of seeds needs, in plain Python.

- ``mean_interval``: the mean with a Student-t interval, right for small n (z = 1.96 is too
  narrow below about 30 seeds: the 95% quantile is 4.30 at n = 3, 2.78 at n = 5).
- ``paired_t``: the two-sided paired t-test on per-seed differences (the variants share seeds,
  so the differences carry the comparison), with the interval of the mean difference.
- ``sign_flip_p``: the exact sign-flip permutation test on the same differences; it assumes no
  normality but cannot go below 2 / 2**n (0.25 at n = 3, 0.0625 at n = 5), so it is reported
  beside the t-test as the distribution-free check, not used for the verdict.
- ``holm``: Holm's step-down correction for testing several variants against the best.

The t distribution comes from the regularized incomplete beta function (a continued fraction,
Numerical Recipes' ``betacf``); its quantile from bisection on the distribution function. No scipy:
a comparison must not pull in a heavy dependency for a few formulas. A leaf module (it imports
nothing of vizlab), shared by the ranking (vizlab.compare.ranking) and the dashboard's bands.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedTest", "holm", "mean_interval", "paired_t", "sign_flip_p", "t_cdf",
           "t_quantile"]

LEVEL = 0.95
EXACT_SIGN_FLIP_MAX_N = 16  # 65,536 sign patterns; beyond, a seeded Monte Carlo estimate
MONTE_CARLO_DRAWS = 20_000


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # where the fraction converges fast; else use symmetry
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (e.g. t_quantile(0.975, 2) = 4.3027)."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must lie strictly between 0 and 1")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    if q == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    for _ in range(200):  # bisection: slow but sure, and a few hundred cheap steps at most
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def mean_interval(values: Sequence[float], level: float = LEVEL
                  ) -> tuple[float, float | None, float | None]:
    """(mean, low, high): the Student-t interval of the mean; (mean, None, None) for one value."""
    if not values:
        raise ValueError("no values")
    mean, sd = _mean_sd(values)
    n = len(values)
    if n < 2:
        return mean, None, None
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of ``a`` against ``b`` over the same seeds."""

    n: int
    mean_diff: float  # mean of a - b
    diff_low: float  # Student-t interval of the mean difference
    diff_high: float
    t: float  # inf when every difference is the same nonzero value
    p: float  # two-sided paired t-test
    p_sign_flip: float  # two-sided sign-flip permutation test (exact for n <= 16)


def paired_t(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> PairedTest:
    """The paired t-test of ``a`` against ``b`` (same length >= 2, matched by seed)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired test needs two equally long samples of at least 2 values")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    mean, sd = _mean_sd(diffs)
    if sd == 0.0:  # identical differences: no spread to test against
        t, p = (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
        half = 0.0
    else:
        se = sd / math.sqrt(n)
        t = mean / se
        p = min(1.0, 2.0 * t_cdf(-abs(t), n - 1))
        half = t_quantile(0.5 + level / 2.0, n - 1) * se
    return PairedTest(n, mean, mean - half, mean + half, t, p, sign_flip_p(diffs))


def sign_flip_p(diffs: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of the sign-flip test: the share of sign patterns whose |sum| is at
    least the observed one. Exact (all 2**n patterns) up to n = 16, else a seeded estimate."""
    n = len(diffs)
    if n == 0:
        return 1.0
    observed = abs(math.fsum(diffs))
    slack = 1e-9 * max(1.0, math.fsum(abs(d) for d in diffs))  # rounding between orders
    if n <= EXACT_SIGN_FLIP_MAX_N:
        hits = sum(1 for signs in itertools.product((1.0, -1.0), repeat=n)
                   if abs(math.fsum(s * d for s, d in zip(signs, diffs))) >= observed - slack)
        return hits / 2 ** n
    rng = random.Random(seed)
    hits = sum(1 for _ in range(MONTE_CARLO_DRAWS)
               if abs(math.fsum(d if rng.random() < 0.5 else -d for d in diffs))
               >= observed - slack)
    return (hits + 1) / (MONTE_CARLO_DRAWS + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: sort ascending, multiply the i-th smallest
    (0-based) by m - i, keep them non-decreasing, cap at 1. Reject where adjusted <= alpha."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
