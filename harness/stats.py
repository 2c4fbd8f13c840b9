"""Pure functions from raw request samples to the figures a table shows, and the rules
that judge them. No clocks, no threads: everything here is tested on synthetic streams.

Conventions, chosen so that every figure is a value a request really had:

- Percentiles use the **nearest-rank** definition (the smallest sample with at least p % of
  the samples at or below it), as HdrHistogram and perf_analyzer do; no interpolation.
- Merging runs (threads, client processes, repeats) concatenates raw int64 nanoseconds, so a
  merged percentile is exactly the percentile of all samples together (lossless).
- Throughput counts replies *completed* inside a window; latency describes the requests
  *sent* (open loop: *scheduled*) inside it. Under overload the two differ, as they should.
- Stability follows perf_analyzer: the last 3 windows are stable when max/min of their QPS
  and of their TP50 are both within ``stability_pct`` percent.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.measurement import STABLE_SET, Samples

PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
LATENCY_KEYS = (*PERCENTILES, "max", "mean")


#: Two-sided 95 % Student t quantiles by degrees of freedom (no SciPy needed).
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip


def percentile_ns(latencies_ns: np.ndarray, percent: float) -> int:
    """Nearest-rank percentile of a non-empty sample."""
    ordered = np.sort(latencies_ns, kind="stable")
    rank = max(1, math.ceil(percent / 100 * ordered.size))
    return int(ordered[rank - 1])


def latency_summary_ms(latencies_ns: np.ndarray) -> dict[str, float]:
    """p50/p90/p95/p99/max/mean in milliseconds; empty input gives NaNs, not an exception."""
    if latencies_ns.size == 0:
        return dict.fromkeys(LATENCY_KEYS, math.nan)
    ordered = np.sort(latencies_ns)
    summary = {
        key: float(ordered[max(1, math.ceil(p / 100 * ordered.size)) - 1]) / 1e6
        for key, p in PERCENTILES.items()
    }
    summary["max"] = float(ordered[-1]) / 1e6
    summary["mean"] = float(ordered.mean()) / 1e6
    return summary


def throughput(ok: int, duration_s: float) -> float:
    return ok / duration_s if duration_s > 0 else 0.0


@dataclass(frozen=True)
class WindowStats:
    qps: float
    p50_ms: float


def window_stats(samples: Samples, boundaries_ns: Sequence[int]) -> list[WindowStats]:
    """QPS (replies completed in the window) and TP50 (requests sent in it) per window."""
    stats = []
    for begin, end in itertools.pairwise(boundaries_ns):
        ok = samples.ok_done_between(begin, end)
        sent_ok = samples.sent_between(begin, end).ok_latencies()
        p50 = percentile_ns(sent_ok, 50) / 1e6 if sent_ok.size else math.nan
        stats.append(WindowStats(throughput(ok, (end - begin) / 1e9), p50))
    return stats


def within(values: Sequence[float], pct: float) -> bool:
    """max/min of ``values`` is within ``pct`` percent (all positive and finite)."""
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        return False
    return max(values) / min(values) <= 1 + pct / 100


def is_stable(windows: Sequence[WindowStats], pct: float) -> bool:
    """The stability rule on the last :data:`STABLE_SET` windows (QPS and TP50)."""
    last = windows[-STABLE_SET:]
    if len(last) < STABLE_SET:
        return False
    return within([w.qps for w in last], pct) and within([w.p50_ms for w in last], pct)


def t95(df: int) -> float:
    """Student's t two-sided 95 % quantile; conservative (next lower df) between entries."""
    return _T95[max(k for k in _T95 if k <= df)]


def median_ci95(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """The median of repeated measurements and a 95 % CI of their mean (Student's t).

    With fewer than two repeats there is no interval: ``None``, never a fake zero width.
    """
    if not values:
        return math.nan, None
    middle = statistics.median(values)
    if len(values) < 2:
        return middle, None
    mean = statistics.fmean(values)
    half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return middle, (mean - half, mean + half)
