"""Statistics on synthetic latency streams whose answers are known in advance."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measurement import ERROR, OK, TIMEOUT, Samples
from harness.stats import (
    WindowStats,
    is_stable,
    latency_summary_ms,
    percentile_ns,
    window_stats,
    within,
)

MS = 1_000_000


def test_nearest_rank_percentiles_of_1_to_100_ms():
    latencies = np.arange(1, 101, dtype=np.int64) * MS
    np.random.default_rng(1).shuffle(latencies)
    summary = latency_summary_ms(latencies)
    assert summary == {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "max": 100, "mean": 50.5}


def test_percentiles_are_values_that_occurred():
    # 990 fast requests and 10 slow ones: p99 is the last fast one, never an interpolation.
    latencies = np.array([1 * MS] * 990 + [500 * MS] * 10, dtype=np.int64)
    summary = latency_summary_ms(latencies)
    assert summary["p99"] == 1 and summary["max"] == 500
    assert percentile_ns(latencies, 99.1) == 500 * MS


def test_one_sample_and_no_sample():
    assert latency_summary_ms(np.array([7 * MS]))["p50"] == 7
    assert all(math.isnan(v) for v in latency_summary_ms(np.empty(0, np.int64)).values())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10**10), min_size=1, max_size=400),
    st.lists(st.integers(min_value=0, max_value=399), max_size=5),
)
def test_merging_parts_is_lossless(values, cuts):
    """Any split of a stream (threads, client processes, repeats) merges back exactly."""
    stream = np.array(values, dtype=np.int64)
    edges = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    parts = [
        Samples(stream[a:b], stream[a:b], np.zeros(b - a, np.int8))
        for a, b in itertools.pairwise(edges)
    ]
    merged = Samples.concat(parts)
    assert latency_summary_ms(merged.latency_ns) == latency_summary_ms(stream)
    assert len(merged) == len(values)


def test_stability_rule_uses_max_over_min_of_the_last_three():
    steady = [WindowStats(1000, 1.0), WindowStats(1050, 1.02), WindowStats(1090, 0.99)]
    assert is_stable(steady, 10)
    assert not is_stable(steady, 5)  # 1090 / 1000 = 1.09
    assert not is_stable(steady[:2], 50)  # fewer than three windows
    drifting = [WindowStats(1000, 1.0), WindowStats(1000, 1.0), WindowStats(1000, 1.2)]
    assert not is_stable(drifting, 10)  # TP50 moved 20 %
    early_noise = [WindowStats(10, 9.0), *steady]
    assert is_stable(early_noise, 10)  # only the last three count
    assert not within([1.0, math.nan, 1.0], 50) and not within([0.0, 0.0, 0.0], 50)


def _stream(starts_ms, latencies_ms, outcomes):
    return Samples(
        np.array(starts_ms, dtype=np.int64) * MS,
        np.array(latencies_ms, dtype=np.int64) * MS,
        np.array(outcomes, dtype=np.int8),
    )


def test_windows_count_replies_completed_and_time_requests_sent():
    # Window 0: [0, 1000) ms, window 1: [1000, 2000) ms.
    samples = _stream(
        starts_ms=[100, 200, 900, 1100, 1200, 1300],
        latencies_ms=[10, 30, 500, 20, 40, 60],  # the 900 ms request completes at 1400 ms
        outcomes=[OK, OK, OK, OK, ERROR, OK],
    )
    first, second = window_stats(samples, [0, 1000 * MS, 2000 * MS])
    assert first == WindowStats(qps=2.0, p50_ms=30.0)  # 2 done; p50 of {10, 30, 500}
    assert second == WindowStats(qps=3.0, p50_ms=20.0)  # done: 900, 1100, 1300; p50 {20, 60}
    measured = samples.sent_between(1000 * MS, 2000 * MS)
    assert (len(measured), measured.count(OK), measured.count(ERROR)) == (3, 2, 1)
    assert measured.count(TIMEOUT) == 0
