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


#: How every interval of a point is computed, as recorded in its result.
INTERVAL_METHOD = "median, 95 % distribution-free (order statistics, sign test)"
CONFIDENCE = 0.95


def order_rank(n: int, confidence: float = CONFIDENCE) -> int | None:
    """The rank ``k`` for which ``[x_(k), x_(n+1-k)]`` of ``n`` sorted observations covers
    the population median with at least ``confidence``, as tight as possible.

    The number of observations below the median is Binomial(n, 1/2) whatever their
    distribution, so the coverage is ``1 - 2 P(B <= k - 1)``: exact, with no assumption
    of normality (our QPS rounds are skewed by outside blips). With fewer than 6
    observations even ``[min, max]`` covers less than 95 %: ``None``.
    """
    best = None
    below = 0.0  # P(B <= k - 1)
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2**n
        if 1 - 2 * below < confidence:
            break
        best = k
    return best


def median_interval(values: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """The median of ``values`` and its distribution-free 95 % interval (``None`` with
    fewer than 6 values: no honest interval exists, and no fake one is given)."""
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return math.nan, None
    middle = statistics.median(finite)
    k = order_rank(len(finite))
    if k is None:
        return middle, None
    return middle, (finite[k - 1], finite[len(finite) - k])


def half_width_pct(center: float, interval: tuple[float, float] | None) -> float | None:
    """The larger side of ``interval`` around ``center``, in % of it: the printed ±."""
    if interval is None or not math.isfinite(center) or center <= 0:
        return None
    low, high = interval
    return 100 * max(center - low, high - center) / center


def paired_ratios(values: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per-round ratios of one system to the baseline, over the rounds both measured.

    Both sides of a round ran back to back under the same conditions, so a slow spell of
    the machine moves both and cancels in the ratio: its spread is far below either's.
    """
    return [
        a / b
        for a, b in zip(values, baseline, strict=False)
        if math.isfinite(a) and math.isfinite(b) and b > 0
    ]


def fixed_loop_rates(slices: int, slice_s: float) -> list[float]:
    """A fixed pure-Python loop's rate (iterations/s) in ``slices`` windows of ``slice_s``:
    the machine's own speed over time, nothing of a system's in it."""
    import time

    rates = []
    for _ in range(slices):
        count, began = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - began) < slice_s:
            sum(range(1000))
            count += 1
        rates.append(count / elapsed)
    return rates


def cpu_noise_floor(slices: int = 10, slice_s: float = 0.1) -> float:
    """The machine's own spread: the coefficient of variation (%) of the fixed loop's rate
    (:func:`fixed_loop_rates`). A benchmark cannot be more precise than this."""
    rates = fixed_loop_rates(slices, slice_s)
    return 100 * statistics.stdev(rates) / statistics.fmean(rates)
