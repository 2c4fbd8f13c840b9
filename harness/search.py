"""SLO search: the highest open-loop rate whose latency percentile stays within a bound.

The question users ask of a deployment is "how much load can it serve within my p99
budget" (perf_analyzer's ``--latency-threshold``, MLPerf's server scenario, vLLM's
``--goodput``). Each probe is a load point measured exactly like a sweep's (paired-round
machinery, the same precision rules); the bracket ``[low, high]`` of ``load.search.rates``
is bisected geometrically until it is within ``precision_pct``. The lower end is the
goodput; a rate ``check_pct`` above it is then measured as well, so the report shows the
bound being exceeded just past it rather than asserting it. On a busy machine one stalled
probe can miss the bound below the knee; when the check above then holds, the search goes
on upward from it (each bisection within ``max_probes``) rather than report a goodput the
check disproves. Likewise "none" (the lowest rate misses) is reported only when a second
probe at the lowest rate misses too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from harness.results import PointRecord
from harness.scenario import Load, Search


def within(record: PointRecord, search: Search, load: Load) -> bool:
    """Measured, with its percentile within the bound and its errors within the limit."""
    if record.failure or not record.sent:
        return False
    latency = record.latency_ms.get(search.percentile, math.inf)
    failed = (record.errors + record.timeouts) / record.sent
    return latency <= search.bound_ms and failed <= load.max_error_rate


def find_goodput(measure: Callable[[float], PointRecord], load: Load) -> list[PointRecord]:
    """Probe rates (``measure(rate)`` gives one system's record) and mark each record's
    ``server_stats["slo"]``: the bound, whether it held, and the probe's role."""
    search = load.search
    assert search is not None
    records: list[PointRecord] = []

    def probe(rate: float, role: str = "probe") -> bool:
        record = measure(float(round(rate)))
        held = within(record, search, load)
        record.server_stats["slo"] = {"bound": search.title, "within": held, "role": role}
        records.append(record)
        return held

    low, high = search.bounds
    # "No goodput in the range" ends the search on one probe; on a busy machine one stall
    # can miss the bound at any rate, so that verdict needs the lowest rate to miss twice.
    if not probe(low) and not probe(low):
        return records
    check_role = f"goodput +{search.check_pct:g} %"
    if probe(high):
        _mark(records, high, "goodput")
        probe(high * (1 + search.check_pct / 100), check_role)
        return records
    probes = 2
    while True:
        while high / low - 1 > search.precision_pct / 100 and probes < search.max_probes:
            middle = round(math.sqrt(low * high))
            if middle in (round(low), round(high)):
                break
            if probe(middle):
                low = middle
            else:
                high = middle
            probes += 1
        above = round(low * (1 + search.check_pct / 100))
        if not probe(above, check_role):
            break
        missed = [r.rate for r in records if not r.server_stats["slo"]["within"]]
        if not (higher := [rate for rate in missed if rate > above]):
            break
        # The rate above held after all: the miss that closed the bracket was a stall, not
        # the knee. Search on above it, up to the lowest rate that has missed there.
        # Each such leg starts check_pct higher, so the legs are few.
        records[-1].server_stats["slo"]["role"] = "probe"
        low, high, probes = above, min(higher), 2
    _mark(records, low, "goodput")
    return records


def _mark(records: list[PointRecord], rate: float, role: str) -> None:
    for record in records:
        if record.rate == round(rate) and record.server_stats["slo"]["within"]:
            record.server_stats["slo"]["role"] = role


def summary(records: Iterable[PointRecord]) -> list[str]:
    """One line per system: its goodput and what the check above it measured."""
    lines: list[str] = []
    by_system: dict[str, list[PointRecord]] = {}
    for record in records:
        if "slo" in record.server_stats:
            by_system.setdefault(record.label, []).append(record)
    for label, probes in by_system.items():
        title = probes[0].server_stats["slo"]["bound"]
        found = [r for r in probes if r.server_stats["slo"]["role"] == "goodput"]
        if not found:
            lines.append(f"{title}: {label}: none (the lowest rate missed it twice)")
            continue
        best, percentile = found[0], title.split()[2]
        line = (
            f"{title}: {label} {best.rate:g} req/s "
            f"({percentile} {best.latency_ms[percentile]:.2f} ms, {len(probes)} points measured)"
        )
        check = [r for r in probes if r.server_stats["slo"]["role"].startswith("goodput +")]
        if check:
            above = check[0]
            verdict = "exceeds it" if not above.server_stats["slo"]["within"] else "within it"
            latency = above.latency_ms.get(percentile, math.nan)
            line += f"; at {above.rate:g} req/s {percentile} {latency:.2f} ms: {verdict}"
        lines.append(line)
    return lines
