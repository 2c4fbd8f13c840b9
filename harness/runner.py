"""Run a scenario: start every system, measure each point in paired rounds, stop them all.

The systems of a scenario are started one after another (each checked for correct
replies and watched idle), then each load point is measured in rounds across all of
them (:mod:`harness.rounds`), then each system's record at that point is judged and the
result file rewritten. Whatever happens (a failing system, Ctrl-C) every system that was
started is stopped, and the records measured so far are saved with ``complete: false``.

Before anything runs, the machine's own noise floor is measured (a fixed CPU loop) and
recorded with the measurement settings in the result's environment: a benchmark cannot
be more precise than the machine it runs on, and the reader should know how precise
that was.
"""

from __future__ import annotations

import gc
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.workloads import Workload
from harness.affinity import Placement, plan
from harness.distributed.cluster import current as current_cluster
from harness.equivalence import ReplyPeers
from harness.errors import BenchError, InputError
from harness.loadgen import drive
from harness.measurement import Run, Timing
from harness.process import keep_failed_logs
from harness.results import PointRecord, RunResult, environment, now_iso
from harness.rounds import Contender, PointPlan, measure_rounds, not_measured, point_records
from harness.scenario import Load, Scenario, SystemSpec
from harness.search import find_goodput, summary
from harness.stats import cpu_noise_floor
from harness.storage import ResultStore, interruptions_deferred
from harness.system import System, SystemUnavailable, create_system
from harness.turn import _hosts, client_processes, senders_of

#: The client ceiling is a quick measurement: it only has to be far above the systems.
CEILING_TIMING = Timing(warmup_s=0.2, window_s=0.25, max_windows=4, stability_pct=100.0)


@dataclass(frozen=True)
class RunOptions:
    """Overrides of the scenario's ``load`` block (``--quick``)."""

    warmup_s: float | None = None
    duration_s: float | None = None
    repeats: int | None = None
    max_repeats: int | None = None

    def apply(self, load: Load) -> Load:
        changes = {k: v for k, v in vars(self).items() if v is not None}
        if "repeats" in changes and "max_repeats" not in changes:
            changes["max_repeats"] = max(load.max_repeats, changes["repeats"])
        return load.model_copy(update=changes)


class Progress:
    """What the runner tells the CLI while it works; the default says nothing."""

    def point_started(self, point: str, seconds: float) -> None: ...

    def round_started(self, point: str, round_index: int) -> None: ...

    def tick(self, elapsed: float) -> None: ...

    def point_finished(self, records: Sequence[PointRecord]) -> None:
        """A point's records, once they are in the result: a Ctrl-C after the user saw
        them keeps them."""

    def message(self, text: str) -> None: ...

    def runs_measured(self, spec: SystemSpec, load: Load, point: float, runs: list[Run]) -> None:
        """Every round of a system at a point, raw samples included (``--save-samples``)."""


class Ceilings:
    """The ``null`` system's QPS per (placement, senders), measured once per run."""

    def __init__(self, scenario: Scenario, progress: Progress) -> None:
        self._scenario = scenario
        self._progress = progress
        self._found: dict[tuple[int, int], float] = {}

    def of(self, contender: Contender, load: Load, point: float) -> float | None:
        system = contender.system
        if contender.own is not None or system.spec.name == "null":
            return None  # another load generator, or the ceiling itself
        key = (client_processes(system, load, point), senders_of(load, point))
        if key not in self._found:
            self._found[key] = self._measure(*key, load, contender.workload)
        return self._found[key]

    def _measure(self, processes: int, senders: int, load: Load, workload: Workload) -> float:
        """The null system's QPS sending ``workload``'s requests (the contender's own: a
        remote model's requests exist once its server declared their tensors)."""
        null_load = load.model_copy(
            update={"clients": [senders], "rates": None, "client_processes": processes}
        )
        scenario = self._scenario.model_copy(update={"load": null_load})
        spec = SystemSpec(name="null")
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


def measurement_settings(load: Load, placement: Placement) -> dict[str, Any]:
    """What this run applied and found, for the result's environment (measured where the
    harness is pinned, so the floor is that of the CPUs the measurement uses)."""
    floor = cpu_noise_floor()
    return {
        "noise_floor_cv_pct": round(floor, 2),
        "precision_pct": load.precision_pct,
        "placement": placement.describe(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "gc_enabled": gc.isenabled(),
        "switch_interval_s": sys.getswitchinterval(),
        "pairing": "rounds across systems, order rotated each round",
    }


def _start_all(
    scenario: Scenario, progress: Progress, placement: Placement
) -> tuple[list[Contender], dict[str, str]]:
    """Start every system once; those that fail to start are reported, not measured, and
    those that cannot run on this machine are reported as skipped."""
    contenders: list[Contender] = []
    failed: dict[str, str] = {}
    peers = ReplyPeers()
    for spec in scenario.systems:
        progress.message(f"starting {spec.column}")
        contender = Contender.create(scenario, spec, placement, peers)
        contenders.append(contender)
        try:
            contender.start(first=True)
        except InputError:  # e.g. a serving block the deployment contradicts: the run stops
            for started in contenders:
                started.stop()
            raise
        except SystemUnavailable as exc:
            progress.message(f"[yellow]{spec.column} skipped:[/yellow] {contender.skip(exc)}")
            contender.stop()
            continue
        except Exception as exc:
            failed[spec.column] = contender.fail(exc)
            progress.message(f"[red]{spec.column} failed:[/red] {contender.failure}")
            contender.stop()
            continue
        idle = contender.idle_cpu_pct or 0.0
        if contender.restart:
            progress.message(
                f"{spec.column} uses {idle:.0f} % of a core while idle: "
                "it is stopped while the others are measured"
            )
            contender.stop()
    return contenders, failed


def run_scenario(
    scenario: Scenario,
    scenario_file: Path,
    store: ResultStore,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
) -> RunResult:
    """Run every system of ``scenario``; the result file is rewritten after each point.

    A results folder that fails mid-run stops nothing: the records stay in ``result`` and
    ``store.finish`` saves them elsewhere at the end. A failing server's log is kept next
    to the result file."""
    progress = progress or Progress()
    load = options.apply(scenario.load)
    if load.seed is None:
        load = load.model_copy(update={"seed": secrets.randbelow(2**31)})
    scenario = scenario.model_copy(update={"load": load})
    # With --cluster the load runs on the nodes' actors: nothing here to place.
    placement = plan("none" if current_cluster() else load.affinity)
    with placement.applied():
        return _run_placed(scenario, scenario_file, store, placement, progress)


def _run_placed(
    scenario: Scenario,
    scenario_file: Path,
    store: ResultStore,
    placement: Placement,
    progress: Progress,
) -> RunResult:
    """The run itself, with the harness already on its CPUs (servers follow as started)."""
    load = scenario.load
    env = environment()
    env["measurement"] = measurement_settings(load, placement)
    floor = env["measurement"]["noise_floor_cv_pct"]
    if floor > load.precision_pct / 2:
        progress.message(
            f"note: this machine's noise floor is {floor:.1f} % (a fixed CPU loop's spread): "
            f"precision of ±{load.precision_pct:g} % may not be reachable"
        )
    result = RunResult(
        scenario=scenario.model_dump(mode="json"),
        scenario_file=str(scenario_file),
        environment=env,
        started_at=now_iso(),
    )

    def save() -> None:
        with interruptions_deferred():
            document = result.to_json()
        if problem := store.save(document):
            progress.message(f"cannot save results: {problem}; kept in memory, running on")

    save()  # claims the file name, so failing servers' logs can be kept beside it
    contenders: list[Contender] = []
    try:
        with keep_failed_logs(store.path):
            contenders, _ = _start_all(scenario, progress, placement)
            ceilings = Ceilings(scenario, progress)
            if load.search is not None:
                _search(scenario, contenders, ceilings, progress, load, result, save)
            else:
                budget = load.budget_s / len(load.points) if load.budget_s else None
                for index, point in enumerate(load.points):
                    records = _measure_point(
                        scenario, contenders, ceilings, progress, load, point, index, budget
                    )
                    result.records.extend(records)
                    save()
                    progress.point_finished(records)  # shown once kept
        result.complete = True
    finally:
        for contender in contenders:
            contender.stop()
        result.finished_at = now_iso()
        store.finish(result.to_json())
    return result


def _search(
    scenario: Scenario,
    contenders: list[Contender],
    ceilings: Ceilings,
    progress: Progress,
    load: Load,
    result: RunResult,
    save: Callable[[], None],
) -> None:
    """Each system's own SLO search (its probes are its own rates, so not paired)."""
    assert load.search is not None
    budget = load.budget_s / load.search.max_probes if load.budget_s else None
    index = 0
    for contender in contenders:
        if not contender.active:
            result.records.append(not_measured(contender, load, 0.0))
            continue

        def measure(rate: float, contender: Contender = contender) -> PointRecord:
            nonlocal index
            index += 1
            (record,) = _measure_point(
                scenario, [contender], ceilings, progress, load, rate, index, budget
            )
            result.records.append(record)
            save()
            progress.point_finished([record])  # shown once kept
            return record

        find_goodput(measure, load)
    for line in summary(result.records):
        progress.message(line)


def _measure_point(
    scenario: Scenario,
    contenders: list[Contender],
    ceilings: Ceilings,
    progress: Progress,
    load: Load,
    point: float,
    index: int,
    budget: float | None,
) -> list[PointRecord]:
    name = f"{point:g} clients" if load.mode == "closed" else f"{point:g} req/s"
    for contender in contenders:
        contender.next_point()  # a load node lost at the last point: placed again now
    active = [c for c in contenders if c.active]
    found: dict[str, float | None] = {}
    for contender in active:
        try:
            found[contender.label] = ceilings.of(contender, load, point)
        except BenchError as exc:
            progress.message(f"client ceiling unknown: {exc}")
    per_round = len(active) * (load.warmup_s + load.duration_s)
    progress.point_started(name, load.repeats * per_round)

    began = time.perf_counter()

    def failed(contender: Contender) -> None:
        progress.message(f"[red]{contender.label} failed:[/red] {contender.out}")

    def round_started(round_index: int) -> None:
        progress.round_started(name, round_index)

    def tick(_: float) -> None:
        progress.tick(time.perf_counter() - began)

    plan = PointPlan(load, point, index, load.seed or 0, budget)
    measure_rounds(active, plan, round_started, tick, failed)
    for contender in active:
        if contender.runs:
            runs = [contender.runs[r] for r in sorted(contender.runs)]
            progress.runs_measured(contender.spec, load, point, runs)
    records = point_records(active, load, point, found, scenario.baseline_column)
    records += [not_measured(c, load, point) for c in contenders if c not in active]
    order = {c.label: i for i, c in enumerate(contenders)}
    records.sort(key=lambda r: order[r.label])
    return records
