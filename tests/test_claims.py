"""Claims decided by intervals, on values with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.claims import Estimate, above, below, between, combine, estimate, ratio, tie_text


@pytest.mark.parametrize(
    ("interval", "verdict"),
    [((1.10, 1.20), "holds"), ((0.90, 1.04), "fails"), ((1.00, 1.10), "inconclusive")],
)
def test_a_claim_holds_only_when_its_whole_interval_clears_the_margin(interval, verdict):
    assert above(Estimate(sum(interval) / 2, interval), 1.05) == verdict


def test_below_and_between():
    assert below(Estimate(0.5, (0.4, 0.6)), 1.0) == "holds"
    assert below(Estimate(1.5, (1.2, 1.8)), 1.0) == "fails"
    assert below(Estimate(1.0, (0.8, 1.2)), 1.0) == "inconclusive"
    assert between(Estimate(11, (10.5, 11.5)), 9, 15) == "holds"
    assert between(Estimate(20, (18, 22)), 9, 15) == "fails"
    assert between(Estimate(15, (14, 16)), 9, 15) == "inconclusive"


def test_a_point_estimate_is_judged_on_its_value():
    assert above(Estimate(1.2, None), 1.05) == "holds"
    assert tie_text(Estimate(1.2, None)) == "no interval"
    assert tie_text(Estimate(1.0, (0.97, 1.02))) == "tie within ±3.0 %"


def test_paired_ratio_of_rounds_sharing_a_drift_is_tight_and_unpaired_is_not():
    drift = np.repeat([1.0, 0.6], 4)  # the machine slows 40 % half-way through
    fast, slow = list(1100 * drift), list(1000 * drift)
    paired = ratio(fast, slow, paired=True)
    unpaired = ratio(fast, slow, paired=False)
    assert paired.value == pytest.approx(1.1) and paired.interval == pytest.approx((1.1, 1.1))
    assert above(paired, 1.05) == "holds"
    low, high = unpaired.interval
    assert low < 1.05 < high and above(unpaired, 1.05) == "inconclusive"


def test_unpaired_ratio_without_intervals_is_a_point_estimate():
    assert ratio([10.0, 12.0], [5.0, 6.0], paired=False) == Estimate(2.0, None)
    assert math.isnan(ratio([1.0], [0.0], paired=False).value)


def test_combine_fails_on_any_failure_and_holds_only_when_all_hold():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["holds", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "fails"]) == "fails"
    assert estimate([1.0] * 6) == Estimate(1.0, (1.0, 1.0))
