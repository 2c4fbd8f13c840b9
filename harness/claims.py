"""Claims decided by intervals: "A beats B by 5 %", "TP50 is under a tenth of the timeout".

A claim about a measured quantity holds only when the quantity's whole 95 % interval is on
the claimed side of its margin, fails when the whole interval is on the other side, and is
inconclusive otherwise: the data cannot tell, and saying so is the honest answer. A
verdict can then change between two runs only if an interval crosses the margin, which is
what "a conclusion survives a re-run" means.

Intervals come from the rounds (:func:`harness.stats.median_interval`): a ratio of two
systems of one scenario is paired round by round; of two scenarios (not measured side by
side) it is bounded by the two intervals, wider and still honest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.stats import half_width_pct, median_interval, paired_ratios

Verdict = Literal["holds", "fails", "inconclusive"]
Interval = tuple[float, float]


@dataclass(frozen=True)
class Estimate:
    """A measured quantity: its median and 95 % interval (None: too few rounds)."""

    value: float
    interval: Interval | None

    @property
    def bounds(self) -> Interval:
        """The interval, or the single value when there is none (a point estimate)."""
        return self.interval or (self.value, self.value)

    def text(self, digits: int = 3) -> str:
        if self.interval is None:
            return f"{self.value:.{digits}g} (no interval)"
        low, high = self.interval
        return f"{self.value:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def estimate(rounds: Sequence[float]) -> Estimate:
    value, interval = median_interval(rounds)
    return Estimate(value, interval)


def ratio(mine: Sequence[float], theirs: Sequence[float], paired: bool) -> Estimate:
    """``mine / theirs``: per-round ratios if the rounds were paired, else the ratio of the
    medians bounded by the two intervals (low / high, high / low)."""
    if paired:
        return estimate(paired_ratios(mine, theirs))
    a, b = estimate(mine), estimate(theirs)
    if not (b.value > 0 and math.isfinite(a.value)):
        return Estimate(math.nan, None)
    if a.interval is None or b.interval is None or b.interval[0] <= 0:
        return Estimate(a.value / b.value, None)
    return Estimate(
        a.value / b.value, (a.interval[0] / b.interval[1], a.interval[1] / b.interval[0])
    )


def above(quantity: Estimate, margin: float) -> Verdict:
    """Is ``quantity`` greater than ``margin``?"""
    low, high = quantity.bounds
    if low > margin:
        return "holds"
    if high <= margin:
        return "fails"
    return "inconclusive"


def below(quantity: Estimate, bound: float) -> Verdict:
    """Is ``quantity`` smaller than ``bound``?"""
    low, high = quantity.bounds
    if high < bound:
        return "holds"
    if low >= bound:
        return "fails"
    return "inconclusive"


def between(quantity: Estimate, low_bound: float, high_bound: float) -> Verdict:
    """Is ``quantity`` inside ``[low_bound, high_bound]``?"""
    low, high = quantity.bounds
    if low_bound <= low and high <= high_bound:
        return "holds"
    if high < low_bound or low > high_bound:
        return "fails"
    return "inconclusive"


def tie_text(quantity: Estimate) -> str:
    """``tie within ±x %``: how far the data leaves the question open."""
    width = half_width_pct(quantity.value, quantity.interval)
    return f"tie within ±{width:.1f} %" if width is not None else "no interval"


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """All parts of a claim: it fails if one part fails, holds only if every part holds."""
    if "fails" in verdicts:
        return "fails"
    if all(v == "holds" for v in verdicts):
        return "holds"
    return "inconclusive"
