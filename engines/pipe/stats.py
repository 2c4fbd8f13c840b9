"""Per-node statistics: each instance counts its own batches, so counting needs no lock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class InstanceStats:
    requests: int = 0
    batches: int = 0
    errors: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    queue_wait_s: float = 0.0
    compute_s: float = 0.0

    def record(self, size: int, compute_s: float, queue_wait_s: float, failed: bool) -> None:
        self.requests += size
        self.batches += 1
        self.errors += size if failed else 0
        self.batch_sizes[size] += 1
        self.compute_s += compute_s
        self.queue_wait_s += queue_wait_s


def merge_stats(parts: Iterable[InstanceStats]) -> dict[str, Any]:
    """One node's figures: totals, the formed batch-size histogram and mean times."""
    total = InstanceStats()
    for part in parts:
        total.requests += part.requests
        total.batches += part.batches
        total.errors += part.errors
        total.batch_sizes.update(dict(part.batch_sizes))
        total.queue_wait_s += part.queue_wait_s
        total.compute_s += part.compute_s
    return {
        "requests": total.requests,
        "batches": total.batches,
        "errors": total.errors,
        "batch_sizes": dict(sorted(total.batch_sizes.items())),
        "queue_wait_ms_mean": 1e3 * total.queue_wait_s / total.requests if total.requests else 0.0,
        "compute_ms_mean": 1e3 * total.compute_s / total.batches if total.batches else 0.0,
    }
