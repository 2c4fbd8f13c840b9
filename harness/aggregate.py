"""From the runs of a load point to its record and verdict.

:func:`summarize` merges the repeats' samples (lossless) and server readings into one
:class:`~harness.results.PointRecord`; :func:`judge` decides whether the record is a valid
measurement and says why not. Pure functions of their inputs: the runner measures, this
module reckons.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Sequence

from harness import gpu, histogram
from harness.distributed.report import merge_reports
from harness.interference import machine_cpus
from harness.measurement import CANCELLED, ERROR, OK, STABLE_SET, TIMEOUT, Run, Samples
from harness.results import PointRecord, RepeatSummary, WindowPoint
from harness.scenario import Load, SystemSpec
from harness.stats import (
    INTERVAL_METHOD,
    half_width_pct,
    latency_summary_ms,
    median_interval,
    percentile_ns,
)
from harness.system import System

#: Fewer replies than this (all repeats together) cannot support a p99: the row is "short".
MIN_REPLIES = 100
#: A result above this share of the client ceiling measures the client, not the system.
CLIENT_BOUND_SHARE = 0.5


def _delta(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    change = Counter(after)
    change.subtract(before)
    return {size: count for size, count in sorted(change.items()) if count > 0}


def repeat_summary(run: Run, deadline_s: float) -> RepeatSummary:
    """One repeat on its own: its QPS, latency percentiles, counts and histogram."""
    measured = run.measured()
    latency = latency_summary_ms(measured.ok_latencies())
    return RepeatSummary(
        qps=run.qps,
        p50_ms=latency["p50"],
        p90_ms=latency["p90"],
        p99_ms=latency["p99"],
        ok=measured.count(OK),
        errors=measured.count(ERROR),
        timeouts=measured.count(TIMEOUT),
        duration_s=run.measured_s,
        histogram=histogram.encode(histogram.of_latencies(measured.ok_latencies(), deadline_s)),
    )


def window_series(runs: Sequence[Run]) -> list[WindowPoint]:
    """Every window of every repeat, on one time axis from the point's first window: the
    series that shows warm-up effects and drift the three reported windows may hide."""
    if not runs:
        return []
    origin = runs[0].boundaries_ns[0]
    series = []
    for index, run in enumerate(runs):
        count = len(run.boundaries_ns) - 1
        for position, (begin, end) in enumerate(itertools.pairwise(run.boundaries_ns)):
            sent = run.samples.sent_between(begin, end)
            ok = sent.ok_latencies()
            seconds = (end - begin) / 1e9
            series.append(
                WindowPoint(
                    repeat=index,
                    start_s=(begin - origin) / 1e9,
                    duration_s=seconds,
                    qps=run.samples.ok_done_between(begin, end) / seconds,
                    p50_ms=percentile_ns(ok, 50) / 1e6 if ok.size else None,
                    p99_ms=percentile_ns(ok, 99) / 1e6 if ok.size else None,
                    errors=sent.count(ERROR),
                    timeouts=sent.count(TIMEOUT),
                    measured=position >= count - STABLE_SET,
                )
            )
    return series


def summarize(
    system: System, spec: SystemSpec, load: Load, point: float, runs: Sequence[Run]
) -> PointRecord:
    """One record out of the repeats: merged samples, median QPS, CI, batches, CPU, the
    per-repeat values, the window series and the latency histogram (the repeats' merged)."""
    merged = Samples.concat([run.measured() for run in runs])
    counts = {code: merged.count(code) for code in (OK, ERROR, TIMEOUT, CANCELLED)}
    if counts[CANCELLED]:
        raise AssertionError("a cancelled request inside the measured windows")
    if len(merged) != counts[OK] + counts[ERROR] + counts[TIMEOUT]:
        raise AssertionError("a request was lost from the accounting")
    per_repeat = [repeat_summary(run, load.request_timeout_s) for run in runs]
    qps_repeats = [repeat.qps for repeat in per_repeat]
    others = [pct for run in runs if (pct := run.others_pct(machine_cpus())) is not None]
    qps, ci = median_interval(qps_repeats)
    batches: Counter[int] = Counter()
    cpu_client = cpu_server = wall = 0.0
    server_known = True
    batched = 0
    for run in runs:
        if run.stats_before is not None and run.stats_after is not None:
            before, after = run.stats_before, run.stats_after
            batches.update(_delta(system.batch_sizes(before), system.batch_sizes(after)))
            batched += run.samples.count(OK)
        start, end = run.probe_start, run.probe_end
        if start is None or end is None:
            continue
        wall += (end.t_ns - start.t_ns) / 1e9
        cpu_client += end.client_cpu_s - start.client_cpu_s
        if start.server_cpu_s is None or end.server_cpu_s is None:
            server_known = False
        else:
            cpu_server += end.server_cpu_s - start.server_cpu_s
    record = PointRecord(
        system=spec.name,
        label=spec.column,
        clients=int(point) if load.mode == "closed" else None,
        rate=float(point) if load.mode == "open" else None,
        qps=qps,
        latency_ms=latency_summary_ms(merged.ok_latencies()),
        sent=len(merged),
        ok=counts[OK],
        errors=counts[ERROR],
        timeouts=counts[TIMEOUT],
        stable=all(run.stable for run in runs),
        repeats=len(runs),
        qps_ci95=list(ci) if ci else None,
        qps_repeats=qps_repeats,
        batch_sizes=dict(sorted(batches.items())),
        batched_requests=batched if batches else 0,
        cpu={
            "client_pct": 100 * cpu_client / wall if wall else None,
            "server_pct": 100 * cpu_server / wall if wall and server_known else None,
        },
        duration_s=sum(run.measured_s for run in runs),
        others_cpu_pct=statistics.median(others) if others else None,
        first_error=next((run.first_error for run in runs if run.first_error), None),
        server_stats=system.stats(),
        histogram=histogram.encode(
            histogram.merge(
                [r.histogram for r in per_repeat if r.histogram], load.request_timeout_s
            )
        ),
        per_repeat=per_repeat,
        windows=window_series(runs),
    )
    times = server_times(system, runs)
    if times is not None:
        record.server_stats["server_times"] = times
    used = gpu.summarize([p.gpu for run in runs for p in (run.probe_start, run.probe_end) if p])
    if used is not None:
        record.server_stats["gpu"] = used
    reports = [run.reported for run in runs if run.reported]
    if reports:
        record.server_stats["load_generator_reports"] = reports
    nodes = [run.load_nodes for run in runs if run.load_nodes]
    if nodes:
        record.server_stats["load_nodes"] = merge_reports(nodes)
    return record


def server_times(system: System, runs: Sequence[Run]) -> dict[str, float] | None:
    """The server's own time per request over the turns (warm-up included, like the
    batch histogram): counter differences summed over the runs, divided by the requests.
    ``None`` when the system reports no such counters (or served no request)."""
    total: Counter[str] = Counter()
    for run in runs:
        if run.stats_before is None or run.stats_after is None:
            continue
        before, after = system.server_times(run.stats_before), system.server_times(run.stats_after)
        if before is None or after is None:
            continue
        for key, value in after.items():
            total[key] += value - before.get(key, 0.0)
    requests = total.pop("requests", 0.0)
    if requests <= 0:
        return None
    per_request = {key: value / requests for key, value in sorted(total.items())}
    return {"requests": requests, **per_request}


def precision_of(record: PointRecord) -> float | None:
    """The half-width of the QPS interval in % of the QPS (None: no interval yet)."""
    interval = tuple(record.qps_ci95) if record.qps_ci95 else None
    return half_width_pct(record.qps, interval)  # type: ignore[arg-type]


def judge(record: PointRecord, load: Load, ceiling: float | None) -> PointRecord:
    """Fill ``client_bound``, ``valid`` and the reasons; see :data:`harness.table.LEGEND`.

    The gate is precision: the 95 % interval of the median QPS over the rounds must be
    within ``precision_pct`` ("imprecise" otherwise, and the table shows the interval it
    got). The per-window stability rule only gates when the scenario asks for it.
    """
    record.client_ceiling_qps = ceiling
    record.client_bound = ceiling is not None and record.qps > CLIENT_BOUND_SHARE * ceiling
    record.interval_method = INTERVAL_METHOD
    record.precision_pct = precision_of(record)
    reasons = []
    if record.precision_pct is None or record.precision_pct > load.precision_pct:
        reasons.append("imprecise")
        if record.others_cpu_pct is not None and record.others_cpu_pct > load.others_max_pct:
            reasons.append("busy")  # why: other processes took the machine meanwhile
    if load.stability_pct is not None and not record.stable:
        reasons.append("unstable")
    if record.duration_s < load.min_duration_s * 0.999 or record.ok < MIN_REPLIES:
        reasons.append("short")
    failed = record.errors + record.timeouts
    if not record.sent or failed / record.sent > load.max_error_rate:
        reasons.append("errors")
    if record.client_bound:
        reasons.append("client-bound")
    record.invalid_reasons, record.valid = reasons, not reasons
    return record
