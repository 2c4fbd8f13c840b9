"""Pure functions from raw latencies to the figures a table shows."""

from __future__ import annotations

import numpy as np

PERCENTILES = {"p50": 50, "p90": 90, "p99": 99}


def latency_summary_ms(latencies_ns: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds; empty input gives NaNs, not an exception."""
    if latencies_ns.size == 0:
        return {key: float("nan") for key in [*PERCENTILES, "max", "mean"]}
    ms = latencies_ns / 1e6
    summary = {
        key: float(value)
        for key, value in zip(
            PERCENTILES, np.percentile(ms, list(PERCENTILES.values())), strict=True
        )
    }
    summary["max"] = float(ms.max())
    summary["mean"] = float(ms.mean())
    return summary


def throughput(ok: int, duration_s: float) -> float:
    return ok / duration_s if duration_s > 0 else 0.0
