"""Per-node statistics: each instance counts its own batches, so counting needs no lock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class InstanceStats:
    """One instance's counters. The batches its worker forms go through :meth:`record`;
    a request its caller ran alone on the borrowed instance (a batch of one that waited in
    no queue, the engine's fast path) counts in ``solo`` and ``solo_s`` only, two
    additions where the caller pays for every one, folded into the totals when read."""

    requests: int = 0
    batches: int = 0
    errors: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    queue_wait_s: float = 0.0
    compute_s: float = 0.0
    #: Each request's batch compute time, summed (Triton's ``compute`` counters' meaning).
    request_compute_s: float = 0.0
    solo: int = 0
    solo_s: float = 0.0

    def record(self, size: int, compute_s: float, queue_wait_s: float, failed: bool) -> None:
        self.requests += size
        self.batches += 1
        self.errors += size if failed else 0
        self.batch_sizes[size] += 1
        self.compute_s += compute_s
        self.request_compute_s += size * compute_s
        self.queue_wait_s += queue_wait_s


def merge_stats(parts: Iterable[InstanceStats]) -> dict[str, Any]:
    """One node's figures: totals, the formed batch-size histogram and mean times."""
    total = InstanceStats()
    for part in parts:
        total.requests += part.requests + part.solo
        total.batches += part.batches + part.solo
        total.errors += part.errors
        total.batch_sizes.update(dict(part.batch_sizes))
        if part.solo:
            total.batch_sizes[1] += part.solo
        total.queue_wait_s += part.queue_wait_s
        total.compute_s += part.compute_s + part.solo_s
        total.request_compute_s += part.request_compute_s + part.solo_s
    return {
        "requests": total.requests,
        "batches": total.batches,
        "errors": total.errors,
        "batch_sizes": dict(sorted(total.batch_sizes.items())),
        "queue_wait_ms_mean": 1e3 * total.queue_wait_s / total.requests if total.requests else 0.0,
        "compute_ms_mean": 1e3 * total.compute_s / total.batches if total.batches else 0.0,
        "queue_us_total": 1e6 * total.queue_wait_s,
        "compute_us_total": 1e6 * total.request_compute_s,
    }


def server_times(stats: dict[str, Any]) -> dict[str, float] | None:
    """The engine's cumulative counters under the names Triton's get (see
    :meth:`harness.system.System.server_times`)."""
    if "queue_us_total" not in stats:
        return None
    return {
        "requests": float(stats["requests"]),
        "queue_us": float(stats["queue_us_total"]),
        "compute_us": float(stats["compute_us_total"]),
    }
