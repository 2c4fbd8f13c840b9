"""Latency histograms in the HdrHistogram format: what a result file keeps of its samples.

A result keeps, per point and per repeat, the OK replies' latencies as an HdrHistogram
(values in microseconds, 1 µs to the request deadline, 3 significant digits) in the
standard compressed base64 encoding, so wrk2's, HdrHistogram's own and our tools can
decode, merge and plot it. Building one is vectorised: the bucket index of every sample is
computed with numpy (HdrHistogram's own formula), then one ``record_value`` per occupied
bucket, so a million samples cost milliseconds, not a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

SIGNIFICANT_DIGITS = 3
LOWEST_US = 1


def new(deadline_s: float) -> HdrHistogram:
    """An empty histogram covering 1 µs to the request deadline."""
    return HdrHistogram(LOWEST_US, max(2, int(np.ceil(deadline_s * 1e6))), SIGNIFICANT_DIGITS)


def _bucket_indexes(histogram: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """``histogram.get_counts_array_index`` for every value at once."""
    masked = values | histogram.sub_bucket_mask
    # bit_length, exactly: frexp's exponent of an integer below 2**53 is its bit length.
    bit_length = np.frexp(masked.astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - histogram.unit_magnitude - (histogram.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + histogram.unit_magnitude)
    return ((bucket + 1) << histogram.sub_bucket_half_count_magnitude) + (
        sub_bucket - histogram.sub_bucket_half_count
    )


def of_latencies(latencies_ns: np.ndarray, deadline_s: float) -> HdrHistogram:
    """The histogram of these latencies (nanoseconds in, rounded to microseconds)."""
    histogram = new(deadline_s)
    if latencies_ns.size == 0:
        return histogram
    micros = (np.asarray(latencies_ns, dtype=np.int64) + 500) // 1000
    micros = np.clip(micros, 0, histogram.highest_trackable_value)
    counts = np.bincount(_bucket_indexes(histogram, micros), minlength=histogram.counts_len)
    for index in np.flatnonzero(counts):
        histogram.record_value(histogram.get_value_from_index(int(index)), int(counts[index]))
    return histogram


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def decode(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode("ascii"))


def merge(encoded: Iterable[str], deadline_s: float) -> HdrHistogram:
    """The sum of several histograms (repeats, client processes): counts simply add."""
    total = new(deadline_s)
    for text in encoded:
        total.add(decode(text))
    return total


def percentile_ms(histogram: HdrHistogram, percent: float) -> float:
    """Nearest-rank percentile in ms, the rank :mod:`harness.stats` uses (``ceil(p n)``).

    The Python ``hdrh`` library's own ``get_value_at_percentile`` rounds the rank to the
    nearest instead, so in a sparse tail it can answer one sample lower than a record's TP99.
    """
    total = histogram.get_total_count()
    if total == 0:
        return math.nan
    target = max(1, math.ceil(percent / 100 * total))
    seen = 0
    for item in histogram.get_recorded_iterator():
        seen += item.count_at_value_iterated_to
        if seen >= target:
            return histogram.get_highest_equivalent_value(item.value_iterated_to) / 1e3
    return histogram.get_max_value() / 1e3


def cdf(histogram: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(latency ms, share of replies at or below it) for every occupied bucket."""
    values, counts = [], []
    for item in histogram.get_recorded_iterator():
        values.append(histogram.get_highest_equivalent_value(item.value_iterated_to))
        counts.append(item.count_at_value_iterated_to)
    if not counts:
        return np.empty(0), np.empty(0)
    shares = np.cumsum(np.asarray(counts, dtype=float)) / histogram.get_total_count()
    return np.asarray(values, dtype=float) / 1e3, shares
