"""The interval methods behind every ± and every verdict, on synthetic streams with known
answers: the coverage of the median interval on simulated noise, paired ratios that cancel
a shared drift, and the precision rule that decides when a point has been measured enough.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import half_width_pct, median_interval, order_rank, paired_ratios


def test_order_rank_gives_the_tightest_interval_with_95_percent_coverage():
    # Below 6 observations even [min, max] covers less than 95 % (1 - 2/2**n).
    assert [order_rank(n) for n in range(1, 6)] == [None] * 5
    assert order_rank(6) == 1 and order_rank(8) == 1  # [min, max]: 96.9 %, 99.2 %
    assert order_rank(9) == 2  # [x2, x8]: 96.1 %; [x3, x7] would be 82 %
    for n in range(6, 40):
        k = order_rank(n)
        assert k is not None
        coverage = 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n
        tighter = 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        assert coverage >= 0.95 > tighter


def test_median_interval_of_known_values_and_no_fake_interval():
    assert median_interval([42.0, 40.0]) == (41.0, None)
    assert median_interval([5.0] * 6) == (5.0, (5.0, 5.0))
    middle, interval = median_interval([3, 1, 4, 1, 5, 9, 2, 6, 5])
    assert middle == 4 and interval == (1, 6)  # x(2), x(8) of 1 1 2 3 4 5 5 6 9
    assert median_interval([]) == (pytest.approx(math.nan, nan_ok=True), None)


def _rounds(rng: np.random.Generator, noise: str, n: int) -> np.ndarray:
    """QPS of ``n`` rounds around 1000: log-normal spread, or a quiet machine (1 %) whose
    rounds are hit by outside blips 15 % of the time, losing 20-40 % (skewed, heavy)."""
    if noise == "lognormal":
        return 1000.0 * rng.lognormal(0.0, 0.05, n)
    quiet = rng.normal(1000.0, 10.0, n)
    return np.where(rng.random(n) < 0.15, quiet * rng.uniform(0.6, 0.8, n), quiet)


@pytest.mark.parametrize("noise", ["lognormal", "blips"])
@pytest.mark.parametrize("n", [6, 9, 15])
def test_the_interval_covers_the_true_median_at_least_95_percent_of_the_time(noise, n):
    """2000 simulated points of ``n`` rounds; the true median of the noise is known (by
    construction, or from 400,000 draws of the blip mixture)."""
    rng = np.random.default_rng(n)
    truth = 1000.0 if noise == "lognormal" else float(np.median(_rounds(rng, noise, 400_000)))
    trials = 2000
    covered = 0
    for _ in range(trials):
        _, interval = median_interval(list(_rounds(rng, noise, n)))
        assert interval is not None
        covered += interval[0] <= truth <= interval[1]
    assert covered / trials >= 0.95 - 0.015  # binomial slack of 2000 trials


def test_paired_ratios_cancel_a_drift_both_systems_share():
    """The machine slows down 30 % half-way: each system alone is imprecise, their ratio
    (0.5 by construction, with 1 % independent noise) is not."""
    rng = np.random.default_rng(7)
    drift = np.where(np.arange(12) < 6, 1.0, 0.7)
    fast = 2000 * drift * rng.normal(1, 0.01, 12)
    slow = 1000 * drift * rng.normal(1, 0.01, 12)
    alone = half_width_pct(*median_interval(list(slow)))
    ratios = paired_ratios(list(slow), list(fast))
    middle, interval = median_interval(ratios)
    assert alone is not None and alone > 10
    assert middle == pytest.approx(0.5, rel=0.02)
    assert interval is not None and interval[0] <= 0.5 <= interval[1]
    assert half_width_pct(middle, interval) < 3


def test_paired_ratios_use_only_rounds_both_sides_measured():
    assert paired_ratios([10.0, 20.0, 30.0], [5.0, 10.0]) == [2.0, 2.0]
    assert paired_ratios([10.0, math.nan, 30.0], [5.0, 10.0, 0.0]) == [2.0]


def test_half_width_is_the_larger_side_in_percent():
    assert half_width_pct(100.0, (90.0, 104.0)) == pytest.approx(10.0)
    assert half_width_pct(100.0, None) is None
    assert half_width_pct(0.0, (0.0, 0.0)) is None
