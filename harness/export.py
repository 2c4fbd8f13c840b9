"""Exports for other tools: ``bench export`` (result files -> one CSV row per system x
point) and ``bench run --save-samples`` (every request of a run, gzipped CSV).

perf_analyzer, locust and k6 users load a CSV, not our JSON: every file given is exported
(a folder gives all its result files, not only the newest per scenario), one row per
record, with the columns below in this order. Empty cells mean "not measured" (a failed
or skipped point, a single repeat without an interval); ``failure`` and ``skipped`` say why.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import InputError
from harness.measurement import CANCELLED, ERROR, OK, TIMEOUT, Run
from harness.report.resultsets import ResultSet, load_result_set, result_files
from harness.results import PointRecord
from harness.scenario import Load, SystemSpec

COLUMNS = (
    "scenario",
    "started_at",
    "system",
    "label",
    "clients",
    "rate",
    "qps",
    "qps_ci95_low",
    "qps_ci95_high",
    "interval_method",
    "precision_pct",
    "repeats",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
    "sent",
    "ok",
    "errors",
    "timeouts",
    "valid",
    "reasons",
    "client_cpu_pct",
    "server_cpu_pct",
    "client_ceiling_qps",
    "load_generator",
    "failure",
    "skipped",
    "git",
    "file",
)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def row(result: ResultSet, record: PointRecord) -> dict[str, Any]:
    """One record as a CSV row (``None`` becomes an empty cell)."""
    low, high = record.qps_ci95 or (None, None)
    latency = record.latency_ms
    return {
        "scenario": result.name,
        "started_at": result.started_at,
        "system": record.system,
        "label": record.label,
        "clients": record.clients,
        "rate": record.rate,
        "qps": record.qps if record.outcome == "measured" else None,
        "qps_ci95_low": low,
        "qps_ci95_high": high,
        "interval_method": record.interval_method,
        "precision_pct": record.precision_pct,
        "repeats": record.repeats,
        **{f"{key}_ms": _finite(latency.get(key)) for key in ("p50", "p90", "p95", "p99")},
        "max_ms": _finite(latency.get("max")),
        "mean_ms": _finite(latency.get("mean")),
        "sent": record.sent,
        "ok": record.ok,
        "errors": record.errors,
        "timeouts": record.timeouts,
        "valid": record.valid and record.outcome == "measured",
        "reasons": "+".join(record.invalid_reasons),
        "client_cpu_pct": record.cpu.get("client_pct"),
        "server_cpu_pct": record.cpu.get("server_pct"),
        "client_ceiling_qps": record.client_ceiling_qps,
        "load_generator": record.load_generator,
        "failure": (record.failure or "").splitlines()[0] if record.failure else None,
        "skipped": record.skipped,
        "git": result.environment.git,
        "file": str(result.path),
    }


def rows(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in result_files(paths):
        result = load_result_set(path)
        for record in result.records:
            yield row(result, record)


def write_csv(paths: list[Path], out: Path) -> int:
    """Write every record of every result file under ``paths``; the number of rows."""
    found = list(rows(paths))
    try:
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(found)
    except OSError as exc:
        raise InputError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return len(found)


# -- every request: bench run --save-samples -------------------------------------------------

OUTCOMES = {OK: "ok", ERROR: "error", TIMEOUT: "timeout", CANCELLED: "cancelled"}


def samples_path(result_path: Path) -> Path:
    """``results/x-<time>.json`` -> ``results/x-<time>.samples.csv.gz`` (beside it)."""
    return result_path.with_name(f"{result_path.stem}.samples.csv.gz")


class SampleWriter:
    """Appends every request of every repeat of a point to a gzipped CSV, point by point.

    Columns: label, system, clients, rate, repeat, start_s (from the point's first window,
    negative in the warm-up), latency_ms, outcome, measured (inside the reported windows).
    Each point is one gzip member appended to the file: ``pandas.read_csv`` reads it whole.
    """

    def __init__(self, result_path: Callable[[], Path | None]) -> None:
        #: The result file's path, known once the run has claimed its name.
        self._result_path = result_path
        self._header = True

    @property
    def path(self) -> Path | None:
        """Beside the result file (``x-<time>.json`` -> ``x-<time>.samples.csv.gz``)."""
        found = self._result_path()
        return samples_path(found) if found is not None else None

    def write(self, spec: SystemSpec, load: Load, point: float, runs: Sequence[Run]) -> None:
        if not runs:
            return
        origin = runs[0].boundaries_ns[0]
        frames = []
        for index, run in enumerate(runs):
            samples = run.samples
            begin, end = run.measured_bounds
            frames.append(
                pd.DataFrame(
                    {
                        "label": spec.column,
                        "system": spec.name,
                        "clients": int(point) if load.mode == "closed" else None,
                        "rate": float(point) if load.mode == "open" else None,
                        "repeat": index,
                        "start_s": (samples.start_ns - origin) / 1e9,
                        "latency_ms": samples.latency_ns / 1e6,
                        "outcome": pd.Categorical.from_codes(
                            samples.outcome.astype(np.int64), categories=list(OUTCOMES.values())
                        ),
                        "measured": (samples.start_ns >= begin) & (samples.start_ns < end),
                    }
                )
            )
        path = self.path
        if path is None:  # the result file could not be written: nor can its samples
            return
        with gzip.open(path, "at", encoding="utf-8", newline="") as handle:
            pd.concat(frames).to_csv(handle, index=False, header=self._header, float_format="%.9g")
        self._header = False
