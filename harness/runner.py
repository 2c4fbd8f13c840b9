"""Run a scenario: each system in turn is started, checked, measured at every point, stopped.

Systems run one after another, never side by side, so an idle server never competes with
the one being measured. Whatever happens (a failing system, Ctrl-C) every system that was
started is stopped, and the records measured so far are saved with ``complete: false``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines.workloads import Workload, create_workload
from harness.equivalence import check_equivalent
from harness.errors import BenchError, SystemFailure
from harness.loadgen import LoadResult, run_closed_loop
from harness.results import PointRecord, RunResult, environment, now_iso, write_atomic
from harness.scenario import Scenario, SystemSpec
from harness.stats import latency_summary_ms, throughput
from harness.system import Client, System, create_system

READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RunOptions:
    warmup_s: float | None = None
    duration_s: float | None = None


class Progress:
    """What the runner tells the CLI while it works; the default says nothing."""

    def point_started(self, label: str, clients: int, seconds: float) -> None: ...

    def tick(self, elapsed: float) -> None: ...

    def point_finished(self, record: PointRecord) -> None: ...

    def message(self, text: str) -> None: ...


def measure_point(
    system: System,
    spec: SystemSpec,
    workload: Workload,
    clients: int,
    warmup_s: float,
    duration_s: float,
    on_tick: Callable[[float], None] | None,
) -> PointRecord:
    handles: list[Client] = []
    try:
        for _ in range(clients):
            handles.append(system.client())
        requests = [workload.make_request() for _ in range(clients)]
        load: LoadResult = run_closed_loop(handles, requests, warmup_s, duration_s, on_tick)
    finally:
        for handle in handles:
            handle.close()
    return PointRecord(
        system=spec.name,
        label=spec.column,
        clients=clients,
        qps=throughput(load.ok, load.duration_s),
        latency_ms=latency_summary_ms(load.latencies_ns),
        sent=load.sent,
        ok=load.ok,
        errors=load.errors,
        duration_s=load.duration_s,
        first_error=load.first_error,
        server_stats=system.stats(),
    )


def run_system(
    scenario: Scenario,
    spec: SystemSpec,
    warmup_s: float,
    duration_s: float,
    progress: Progress,
) -> list[PointRecord]:
    """Every load point of one system; a failure marks the points it left unmeasured."""
    records: list[PointRecord] = []
    workload = create_workload(scenario.workload.name, scenario.workload.options)
    system = create_system(spec, scenario)
    try:
        progress.message(f"starting {spec.column}")
        system.start()
        system.ready(READY_TIMEOUT_S)
        check_equivalent(system, spec, workload)
        for clients in scenario.load.clients:
            progress.point_started(spec.column, clients, warmup_s + duration_s)
            record = measure_point(
                system, spec, workload, clients, warmup_s, duration_s, progress.tick
            )
            records.append(record)
            try:
                system.check_alive()
            except SystemFailure as exc:
                record.failure = str(exc)  # it died during this point: its numbers are void
                raise
            finally:
                progress.point_finished(record)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        progress.message(f"[red]{spec.column} failed:[/red] {reason}")
        measured = {record.clients for record in records}
        records.extend(
            PointRecord(system=spec.name, label=spec.column, clients=clients, failure=reason)
            for clients in scenario.load.clients
            if clients not in measured
        )
    finally:
        system.stop()
    return records


def run_scenario(
    scenario: Scenario,
    scenario_file: Path,
    result_path: Path,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
) -> RunResult:
    """Run every system of ``scenario``; the result file is rewritten after each system."""
    progress = progress or Progress()
    load = scenario.load
    warmup_s = load.warmup_s if options.warmup_s is None else options.warmup_s
    duration_s = load.duration_s if options.duration_s is None else options.duration_s
    result = RunResult(
        scenario=scenario.model_dump(mode="json"),
        scenario_file=str(scenario_file),
        environment=environment(),
        started_at=now_iso(),
    )
    try:
        for spec in scenario.systems:
            result.records.extend(run_system(scenario, spec, warmup_s, duration_s, progress))
            write_atomic(result_path, result.to_json())
        result.complete = True
    finally:
        result.finished_at = now_iso()
        write_atomic(result_path, result.to_json())
    return result
