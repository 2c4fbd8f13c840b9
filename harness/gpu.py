"""Local GPUs' utilisation and memory per point, through NVML (``nvidia-ml-py``).

Read at each measured window's boundaries, while the load runs (NVML's utilisation covers
its last sample period, up to a second). Only where ``pynvml`` imports and ``nvmlInit``
succeeds; elsewhere nothing is recorded (no zeros that would read as an idle GPU).
Triton's own GPU gauges come with its ``/metrics`` scrape instead (engines/triton/metrics.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import Any


@functools.lru_cache(maxsize=1)
def nvml() -> ModuleType | None:
    """``pynvml``, initialised once per process, or None (not installed, no driver, no GPU)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    return pynvml if _initialised(pynvml) else None


def _initialised(module: Any) -> bool:
    try:
        module.nvmlInit()
        return int(module.nvmlDeviceGetCount()) > 0
    except module.NVMLError:
        return False


def sample(module: Any = None) -> dict[str, float] | None:
    """Every local GPU now: mean utilisation (%) and memory used (bytes, summed)."""
    module = module if module is not None else nvml()
    if module is None:
        return None
    try:
        handles = [module.nvmlDeviceGetHandleByIndex(i) for i in range(module.nvmlDeviceGetCount())]
        busy = [float(module.nvmlDeviceGetUtilizationRates(h).gpu) for h in handles]
        used = [float(module.nvmlDeviceGetMemoryInfo(h).used) for h in handles]
    except module.NVMLError:
        return None
    if not handles:
        return None
    return {"utilization_pct": sum(busy) / len(busy), "memory_used_bytes": sum(used)}


def summarize(samples: Sequence[dict[str, float] | None]) -> dict[str, Any] | None:
    """A point's samples: mean utilisation, peak memory; None when there were none."""
    found = [s for s in samples if s is not None]
    if not found:
        return None
    return {
        "source": "nvml",
        "samples": len(found),
        "utilization_pct": sum(s["utilization_pct"] for s in found) / len(found),
        "memory_used_bytes": max(s["memory_used_bytes"] for s in found),
    }
