"""Run a scenario: each system in turn is started, checked, measured at every point, stopped.

Systems run one after another, never side by side, so an idle server never competes with
the one being measured. Whatever happens (a failing system, Ctrl-C) every system that was
started is stopped, and the records measured so far are saved with ``complete: false``.

Each point is measured ``repeats`` times (see :mod:`harness.loadgen` for one repeat), then
judged: stable, long enough, error rate under the threshold, and not client-bound, which
compares it with the ``null`` system measured with the same clients in the same run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from engines.workloads import Workload, create_workload
from harness.aggregate import judge, summarize
from harness.equivalence import check_equivalent
from harness.errors import BenchError, SystemFailure
from harness.loadgen import Host, ProcessHost, ThreadHost, clock, drive, plans
from harness.measurement import STABLE_SET, Run, Timing
from harness.measurement import Probe as LoadProbe
from harness.process import keep_failed_logs
from harness.results import PointRecord, RunResult, environment, now_iso
from harness.scenario import Load, Scenario, SystemSpec
from harness.storage import ResultStore
from harness.system import Client, LoadGenerator, System, create_system

READY_TIMEOUT_S = 120.0
#: The client ceiling is a quick measurement: it only has to be far above the systems.
CEILING_TIMING = Timing(warmup_s=0.2, window_s=0.25, max_windows=4, stability_pct=100.0)


@dataclass(frozen=True)
class RunOptions:
    """Overrides of the scenario's ``load`` block (``--quick``)."""

    warmup_s: float | None = None
    duration_s: float | None = None
    repeats: int | None = None
    max_windows: int | None = None

    def apply(self, load: Load) -> Load:
        changes = {k: v for k, v in vars(self).items() if v is not None}
        if "max_windows" in changes:
            changes["max_windows"] = max(3, changes["max_windows"])
        return load.model_copy(update=changes)


def timing_of(load: Load) -> Timing:
    return Timing(
        warmup_s=load.warmup_s,
        window_s=load.duration_s / STABLE_SET,
        max_windows=load.max_windows,
        stability_pct=load.stability_pct,
    )


class Progress:
    """What the runner tells the CLI while it works; the default says nothing."""

    def point_started(self, label: str, point: str, seconds: float) -> None: ...

    def tick(self, elapsed: float) -> None: ...

    def point_finished(self, record: PointRecord) -> None: ...

    def message(self, text: str) -> None: ...


# -- one repeat --------------------------------------------------------------------------


def _cpu_seconds(pids: Sequence[int], with_children: bool) -> float:
    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)] if with_children else [process]
            for member in family:
                times = member.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def make_probe(system: System, client_pids: Sequence[int]) -> Callable[[], LoadProbe]:
    """Readings at each window boundary: client and server CPU so far, server counters."""

    def probe() -> LoadProbe:
        server = system.server_pids()
        return LoadProbe(
            t_ns=clock(),
            client_cpu_s=_cpu_seconds(client_pids, with_children=False),
            server_cpu_s=_cpu_seconds(server, with_children=True) if server else None,
            stats=system.stats(),
        )

    return probe


def senders_of(load: Load, point: float) -> int:
    """Concurrent senders: the clients (closed loop) or the open loop's sender pool."""
    return int(point) if load.mode == "closed" else load.max_outstanding


def client_processes(system: System, load: Load, point: float) -> int:
    """Client processes the point gets: 1 (threads here) unless asked and possible."""
    if load.client_processes == 1 or system.client_factory() is None:
        return 1
    return len(plans(load.mode, senders_of(load, point), load.client_processes, 1.0))


def _hosts(system: System, workload: Workload, load: Load, point: float, seed: int) -> list[Host]:
    """Senders for one repeat: threads here, or client processes if the system allows."""
    processes = client_processes(system, load, point)
    factory = system.client_factory() if processes > 1 else None
    host_plans = plans(
        load.mode,
        senders_of(load, point),
        processes,
        load.request_timeout_s,
        rate=point if load.mode == "open" else 0.0,
        arrival=load.arrival,
        seed=seed,
    )
    if factory is None:
        plan = host_plans[0]
        clients: list[Client] = []
        try:
            while len(clients) < plan.senders:
                clients.append(system.client())
        except BaseException:
            for client in clients:
                client.close()
            raise
        return [ThreadHost(clients, [workload.make_request() for _ in clients], plan)]
    hosts = [ProcessHost(factory, workload.make_request(), plan) for plan in host_plans]
    try:
        for host in hosts:
            host.wait_ready()
    except BaseException:
        for host in hosts:
            host.close()
        raise
    return hosts


def measure_repeat(
    system: System,
    own: LoadGenerator | None,
    workload: Workload,
    load: Load,
    point: float,
    seed: int,
    on_tick: Callable[[float], None] | None = None,
) -> Run:
    timing = timing_of(load)
    if own is not None:
        return own.run(point, timing, make_probe(system, []))
    hosts = _hosts(system, workload, load, point, seed)
    try:
        pids = [os.getpid()] + [pid for host in hosts for pid in host.pids()]
        return drive(hosts, timing, load.request_timeout_s, make_probe(system, pids), on_tick)
    finally:
        for host in hosts:
            host.close()


# -- a point: repeats, then the verdict --------------------------------------------------


def measure_point(
    system: System,
    own: LoadGenerator | None,
    spec: SystemSpec,
    workload: Workload,
    load: Load,
    point: float,
    on_tick: Callable[[float], None] | None = None,
) -> PointRecord:
    runs = []
    done = 0.0
    for repeat in range(load.repeats):

        def tick(elapsed: float, before: float = done) -> None:
            if on_tick:
                on_tick(before + elapsed)

        run = measure_repeat(system, own, workload, load, point, repeat, tick)
        done += (run.boundaries_ns[-1] - run.boundaries_ns[0]) / 1e9 + load.warmup_s
        runs.append(run)
    record = summarize(system, spec, load, point, runs)
    if own is not None:
        record.client_processes = 1
        record.load_generator = getattr(own, "name", type(own).__name__)
    else:
        record.client_processes = client_processes(system, load, point)
        record.load_generator = "processes" if record.client_processes > 1 else "threads"
    return record


class Ceilings:
    """The ``null`` system's QPS per (placement, senders), measured once per run."""

    def __init__(self, scenario: Scenario, progress: Progress) -> None:
        self._scenario = scenario
        self._progress = progress
        self._found: dict[tuple[int, int], float] = {}

    def of(
        self, system: System, own: LoadGenerator | None, load: Load, point: float
    ) -> float | None:
        if own is not None or system.spec.name == "null":
            return None  # another load generator, or the ceiling itself
        key = (client_processes(system, load, point), senders_of(load, point))
        if key not in self._found:
            self._found[key] = self._measure(*key, load)
        return self._found[key]

    def _measure(self, processes: int, senders: int, load: Load) -> float:
        null_load = load.model_copy(
            update={
                "clients": [senders],
                "rates": None,
                "client_processes": processes,
                "repeats": 1,
            }
        )
        scenario = self._scenario.model_copy(update={"load": null_load})
        spec = SystemSpec(name="null")
        workload = create_workload(scenario.workload.name, scenario.workload.options)
        with create_system(spec, scenario) as null:
            null.start()
            run = _ceiling_run(null, workload, null_load, senders)
        where = f"{processes} client processes" if processes > 1 else "threads"
        self._progress.message(f"client ceiling ({where}, {senders} senders): {run.qps:,.0f} QPS")
        return run.qps


def _ceiling_run(null: System, workload: Workload, load: Load, senders: int) -> Run:
    hosts = _hosts(null, workload, load, senders, seed=0)
    try:
        return drive(hosts, CEILING_TIMING, load.request_timeout_s)
    finally:
        for host in hosts:
            host.close()


def _unmeasured(spec: SystemSpec, load: Load, point: float, reason: str) -> PointRecord:
    return PointRecord(
        system=spec.name,
        label=spec.column,
        clients=int(point) if load.mode == "closed" else None,
        rate=float(point) if load.mode == "open" else None,
        failure=reason,
    )


def failure_reason(system: System, exc: Exception) -> str:
    """Why a system failed. A connection error is only the symptom of a server that died:
    then the server's exit (code and log tail) is the reason given."""
    if isinstance(exc, BenchError):
        return str(exc)
    if system.server_pids():  # started: a dead server is the cause
        try:
            system.check_alive()
        except SystemFailure as dead:
            return str(dead)
    return f"{type(exc).__name__}: {exc}"


def run_system(
    scenario: Scenario,
    spec: SystemSpec,
    load: Load,
    ceilings: Ceilings,
    progress: Progress,
) -> list[PointRecord]:
    """Every load point of one system; a failure marks the points it left unmeasured."""
    records: list[PointRecord] = []
    workload = create_workload(scenario.workload.name, scenario.workload.options)
    system = create_system(spec, scenario)
    seconds = load.repeats * (load.warmup_s + load.duration_s)
    try:
        progress.message(f"starting {spec.column}")
        system.start()
        system.ready(READY_TIMEOUT_S)
        check_equivalent(system, spec, workload)
        own = system.load_generator()
        for point in load.points:
            ceiling = ceilings.of(system, own, load, point)
            blank = _unmeasured(spec, load, point, reason="")
            progress.point_started(spec.column, blank.point_name, seconds)
            record = measure_point(system, own, spec, workload, load, point, progress.tick)
            records.append(judge(record, load, ceiling))
            try:
                system.check_alive()
            except SystemFailure as exc:
                record.failure = str(exc)  # it died during this point: its numbers are void
                raise
            finally:
                progress.point_finished(record)
    except Exception as exc:
        reason = failure_reason(system, exc)
        progress.message(f"[red]{spec.column} failed:[/red] {reason}")
        measured = {record.point for record in records}
        records.extend(
            _unmeasured(spec, load, point, reason) for point in load.points if point not in measured
        )
    finally:
        system.stop()
    return records


def run_scenario(
    scenario: Scenario,
    scenario_file: Path,
    store: ResultStore,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
) -> RunResult:
    """Run every system of ``scenario``; the result file is rewritten after each system.

    A results folder that fails mid-run stops nothing: the records stay in ``result`` and
    ``store.finish`` saves them elsewhere at the end. A failing server's log is kept next
    to the result file."""
    progress = progress or Progress()
    load = options.apply(scenario.load)
    ceilings = Ceilings(scenario, progress)
    result = RunResult(
        scenario=scenario.model_dump(mode="json"),
        scenario_file=str(scenario_file),
        environment=environment(),
        started_at=now_iso(),
    )

    def save() -> None:
        if problem := store.save(result.to_json()):
            progress.message(f"cannot save results: {problem}; kept in memory, running on")

    save()  # claims the file name, so failing servers' logs can be kept beside it
    try:
        with keep_failed_logs(store.path):
            for spec in scenario.systems:
                result.records.extend(run_system(scenario, spec, load, ceilings, progress))
                save()
        result.complete = True
    finally:
        result.finished_at = now_iso()
        store.finish(result.to_json())
    return result
