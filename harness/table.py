"""The seed-style Markdown table: a row per load point, a column per system.

Each cell ends with its validity mark, so a reader sees at once which numbers to trust:
``✓`` (stable, long enough, error rate under the threshold, not client-bound) or ``✗``
and the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from harness.results import PointRecord

VALID, INVALID = "✓", "✗"
LEGEND = (
    f"{VALID} valid: stable, long enough, error rate under the threshold, not client-bound; "
    f"{INVALID} why not. QPS: median of repeats (± half the 95 % CI)."
)


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def mark(record: PointRecord) -> str:
    return VALID if record.valid else f"{INVALID} " + "+".join(record.invalid_reasons)


def cell(record: PointRecord) -> str:
    if record.failure:
        return f"failed: {record.failure.splitlines()[0][:60]}"
    latency = record.latency_ms
    spread = ""
    if record.qps_ci95 and record.qps > 0:
        low, high = record.qps_ci95
        spread = f" ±{(high - low) / 2 / record.qps:.0%}"
    text = (
        f"QPS {record.qps:.0f}{spread} · TP50 {_ms(latency['p50'])} ms"
        f" · TP99 {_ms(latency['p99'])} ms"
    )
    if record.errors or record.timeouts:
        text += f" · errors {record.errors} · timeouts {record.timeouts}"
    return f"{text} {mark(record)}"


def markdown_table(title: str, records: Iterable[PointRecord], columns: list[str]) -> str:
    by_point: dict[float, dict[str, PointRecord]] = {}
    open_loop = False
    for record in records:
        by_point.setdefault(record.point, {})[record.label] = record
        open_loop |= record.clients is None
    lines = [
        f"### {title}",
        "",
        f"| {'rate/s' if open_loop else 'clients'} | " + " | ".join(columns) + " |",
        "|---:|" + "---|" * len(columns),
    ]
    for point in sorted(by_point):
        row = by_point[point]
        cells = [cell(row[column]) if column in row else "-" for column in columns]
        lines.append(f"| {point:g} | " + " | ".join(cells) + " |")
    lines += ["", LEGEND]
    return "\n".join(lines)
