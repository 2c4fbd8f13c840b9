"""The seed-style Markdown table: a row per load point, a column per system."""

from __future__ import annotations

import math
from collections.abc import Iterable

from harness.results import PointRecord


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def cell(record: PointRecord) -> str:
    if record.failure:
        return f"failed: {record.failure.splitlines()[0][:60]}"
    latency = record.latency_ms
    text = f"QPS {record.qps:.0f} · TP50 {_ms(latency['p50'])} ms · TP99 {_ms(latency['p99'])} ms"
    if record.errors:
        text += f" · errors {record.errors}"
    return text


def markdown_table(title: str, records: Iterable[PointRecord], columns: list[str]) -> str:
    by_point: dict[int, dict[str, PointRecord]] = {}
    for record in records:
        by_point.setdefault(record.clients, {})[record.label] = record
    lines = [
        f"### {title}",
        "",
        "| clients | " + " | ".join(columns) + " |",
        "|---:|" + "---|" * len(columns),
    ]
    for clients in sorted(by_point):
        row = by_point[clients]
        cells = [cell(row[column]) if column in row else "-" for column in columns]
        lines.append(f"| {clients} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
