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
    f"{VALID} valid: precise (QPS interval within the scenario's precision), long enough, "
    f"error rate under the threshold, not client-bound; {INVALID} why not. "
    "QPS: median of the rounds ± the larger side of its 95 % interval (order statistics; "
    "none below 6 rounds). x: QPS ratio to the baseline column, median of the paired "
    "rounds [95 % interval]. busy: other processes used more of the machine's CPU than "
    "the scenario allows (load.others_max_pct) during its turns, even after retaking them."
)


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def mark(record: PointRecord) -> str:
    return VALID if record.valid else f"{INVALID} " + "+".join(record.invalid_reasons)


def _ratio(record: PointRecord) -> str:
    ratio = record.ratio
    if ratio is None or ratio.baseline == record.label or not math.isfinite(ratio.qps):
        return ""
    if ratio.qps_ci95:
        low, high = ratio.qps_ci95
        return f" · x{ratio.qps:.3g} [{low:.3g}, {high:.3g}]"
    return f" · x{ratio.qps:.3g}"


def cell(record: PointRecord) -> str:
    if record.skipped:
        return f"skipped: {record.skipped}"
    if record.failure:
        return f"failed: {record.failure.splitlines()[0][:60]}"
    latency = record.latency_ms
    if record.precision_pct is not None:
        spread = f" ±{record.precision_pct:.1f} %"
    else:
        spread = f" (no interval: {record.repeats} round{'s' * (record.repeats != 1)})"
    text = (
        f"QPS {record.qps:.0f}{spread}{_ratio(record)} · TP50 {_ms(latency['p50'])} ms"
        f" · TP99 {_ms(latency['p99'])} ms"
    )
    text += _server_times(record)
    if record.errors or record.timeouts:
        text += f" · errors {record.errors} · timeouts {record.timeouts}"
    return f"{text} {mark(record)}"


def _server_times(record: PointRecord) -> str:
    """The server's own queue and compute time per request (Triton's metrics, the pipe
    engine's counters), when the system reports them."""
    times = record.server_stats.get("server_times")
    if not times:
        return ""
    return f" · server queue {times['queue_us']:.0f} µs / compute {times['compute_us']:.0f} µs"


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
