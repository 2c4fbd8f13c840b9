"""Result files with known numbers, written the way the runner writes them.

``bench report`` and ``bench compare`` only read result files, so their tests feed them
files whose repeats, intervals and validity are chosen, not measured.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

#: Student's t at 0.975 by degrees of freedom, for the 95 % interval of a mean.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365}


def record(label: str, clients: int, repeats: list[float], **extra: Any) -> dict[str, Any]:
    """A valid point: median QPS of the repeats, their 95 % CI, latencies (the same in every
    repeat unless ``per_repeat`` is given), one batch size."""
    ci = None
    if len(repeats) > 1:
        mean = statistics.fmean(repeats)
        half = _T975[len(repeats) - 1] * statistics.stdev(repeats) / len(repeats) ** 0.5
        ci = [mean - half, mean + half]
    latency = extra.pop("latency_ms", {"p50": 1.0, "p90": 1.5, "p99": 2.0, "max": 3.0, "mean": 1.1})
    per_repeat = [
        {
            "qps": qps,
            "p50_ms": latency.get("p50", math.nan),
            "p90_ms": latency.get("p90", math.nan),
            "p99_ms": latency.get("p99", math.nan),
            "ok": 1000 // len(repeats),
            "errors": 0,
            "timeouts": 0,
            "duration_s": 1.0,
        }
        for qps in repeats
    ]
    return {
        "system": label,
        "label": label,
        "clients": clients,
        "qps": statistics.median(repeats),
        "latency_ms": latency,
        "per_repeat": per_repeat,
        "sent": 1000,
        "ok": 1000,
        "errors": 0,
        "timeouts": 0,
        "stable": True,
        "client_bound": False,
        "valid": True,
        "invalid_reasons": [],
        "repeats": len(repeats),
        "qps_repeats": repeats,
        "qps_ci95": ci,
        "batch_sizes": {"1": 1000},
        "failure": None,
        **extra,
    }


def _load(records: list[dict[str, Any]]) -> dict[str, Any]:
    rates = sorted({r["rate"] for r in records if r.get("rate") is not None})
    if rates:
        return {"rates": rates, "duration_s": 1}
    return {"clients": sorted({r["clients"] for r in records}), "duration_s": 1}


def write_result(
    path: Path,
    records: list[dict[str, Any]],
    name: str = "demo",
    systems: list[dict[str, Any]] | None = None,
    schema_version: int = 2,
    **scenario: Any,
) -> Path:
    """A complete result file; ``systems`` defaults to one per distinct label."""
    labels = list(dict.fromkeys(r["label"] for r in records))
    document = {
        "schema_version": schema_version,
        "scenario": {
            "name": name,
            "description": f"the {name} scenario",
            "workload": {"name": "echo", "payload": "HelloWorld"},
            "serving": {"instances": 1, "batching_timeout_ms": 0, "max_batch": 1},
            "load": _load(records),
            "systems": systems or [{"name": label} for label in labels],
            **scenario,
        },
        "scenario_file": f"scenarios/{name}.yaml",
        "environment": {"cpu": "Test CPU", "cores": 2, "git": "0123abcd"},
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "complete": True,
        "records": records,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path
