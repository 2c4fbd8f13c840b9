"""Paired rounds: every system of a scenario measured at one point, turn by turn.

A comparison is only as good as the conditions its two sides shared. So the systems of a
scenario are all started first and a point is measured in rounds: in round ``r`` each
system takes one turn, in an order rotated by ``r`` (so no system always follows the same
neighbour or always goes first after a pause). A slow spell of the machine then lands in
one round and touches every system alike: it moves their QPS, not their ratio. Each
round gives one paired observation per system; the per-round ratios to the baseline
system have an interval far tighter than either side's. Systems driven by client threads
take their turns of a round together, in slices of a tenth of a second, turn about (see
:mod:`harness.interleave`): the two sides of a ratio are then never more than a slice apart.

Rounds continue past the scenario's minimum until every system's QPS interval is within
the requested precision, the maximum number of rounds is reached or the point's share of
the time budget is spent. A system whose idle server burns more than a trifle of CPU is
not left running beside the others: it is stopped after each of its turns and started
again before the next.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.workloads import Workload, create_workload
from harness.affinity import Placement, plan
from harness.aggregate import judge, summarize
from harness.equivalence import ReplyPeers, check_equivalent
from harness.errors import (
    BenchError,
    InputError,
    LoadLost,
    SystemFailure,
    raise_if_interrupted,
)
from harness.interference import machine_cpus
from harness.interleave import Member, can_interleave, interleave
from harness.limits import thread_budget
from harness.loadgen import plans
from harness.measurement import Run
from harness.results import PointRecord, Ratio
from harness.scenario import Load, Scenario, SystemSpec
from harness.stats import half_width_pct, median_interval, paired_ratios, percentile_ns
from harness.system import (
    LoadGenerator,
    System,
    SystemUnavailable,
    cpu_seconds,
    create_system,
)
from harness.turn import (
    client_processes,
    make_probe,
    measure_turn,
    senders_of,
    thread_host,
    threads_here,
)

READY_TIMEOUT_S = 120.0
#: Idle CPU (% of one core) above which a server is stopped while others are measured.
#: CPU time is counted in 10 ms ticks: one tick in a 0.5 s probe already reads 2 %.
IDLE_TRIFLE_PCT = 3.0
#: A freshly started system is watched doing nothing twice this long (after as long
#: again to settle: its last check's connections closing); the quieter reading counts.
IDLE_PROBE_S = 0.5
#: How long a failed turn's server gets to show that it exited (see failure_reason).
EXIT_NOTICE_S = 2.0


def rotation(count: int, round_index: int) -> list[int]:
    """The order of ``count`` systems in round ``round_index``: rotated by one each round."""
    shift = round_index % count if count else 0
    return [*range(shift, count), *range(shift)]


def turn_seed(run_seed: int, point_index: int, round_index: int, system_index: int) -> int:
    """A distinct, reproducible arrival seed for every turn of a run."""
    sequence = np.random.SeedSequence([run_seed, point_index, round_index, system_index])
    return int(sequence.generate_state(1)[0])


def failure_reason(system: System, exc: Exception) -> str:
    """Why a system failed. A connection error is only the symptom of a server that died:
    then the server's exit (code and log tail) is the reason given. The kernel closes a
    dying process's sockets (the client's error) before its parent can see it exit, so the
    exit gets ``EXIT_NOTICE_S`` to show (on a busy machine, that gap is not negligible)."""
    if isinstance(exc, BenchError):
        return str(exc)
    if system.server_cpu_seconds() is not None:  # started: a dead server is the cause
        deadline = time.monotonic() + EXIT_NOTICE_S
        while True:
            try:
                system.check_alive()
            except SystemFailure as dead:
                return str(dead)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Contender:
    """One system of the scenario for the whole run: started once, measured in turns."""

    spec: SystemSpec
    scenario: Scenario
    workload: Workload
    system: System
    own: LoadGenerator | None = None
    #: Stopped between its turns (its idle CPU would disturb the others).
    restart: bool = False
    running: bool = False
    idle_cpu_pct: float | None = None
    #: Why it failed: it takes no further turn in this run.
    failure: str | None = None
    #: Why it cannot run on this machine (not a failure): its points are recorded skipped.
    skipped: str | None = None
    #: Why the current point failed without the system to blame (a load node lost): it
    #: takes no further turn at this point, and is measured again at the next.
    point_failure: str | None = None
    #: Runs of the current point by round index (a failed turn leaves a gap).
    runs: dict[int, Run] = field(default_factory=dict)
    #: Client processes its turns at the current point used (1: threads of the harness).
    client_processes: int = 1
    #: Turns of the current point measured again because other work disturbed them.
    retaken: int = 0
    #: The length of the slices its turns at the current point were taken in (None: whole
    #: turns; see :mod:`harness.interleave`).
    slice_s: float | None = None
    #: The CPUs its servers are pinned to after every start (see :mod:`harness.affinity`).
    placement: Placement = field(default_factory=lambda: plan("none"))
    #: The run's systems whose replies the harness cannot compute, compared with each other.
    peers: ReplyPeers = field(default_factory=ReplyPeers)
    #: How its replies were checked before it was measured, and their digest.
    reply_check: dict[str, Any] | None = None

    @classmethod
    def create(
        cls,
        scenario: Scenario,
        spec: SystemSpec,
        placement: Placement | None = None,
        peers: ReplyPeers | None = None,
    ) -> Contender:
        own = scenario.for_system(spec)
        workload = create_workload(own.workload.name, own.workload.options)
        system = create_system(spec, own)
        return cls(
            spec,
            own,
            workload,
            system,
            placement=placement or plan("none"),
            peers=peers or ReplyPeers(),
        )

    @property
    def label(self) -> str:
        return self.spec.column

    @property
    def active(self) -> bool:
        """Still to be measured at this point: neither failed, nor out of it (a lost load
        node), nor skipped."""
        return not (self.out or self.skipped)

    def start(self, first: bool) -> None:
        """Start, wait until ready and (the first time) check its replies and idle CPU.

        A system that computes the workload here needs what the workload needs (its
        runtime, a GPU): without it, it is unavailable, whatever the system itself brings.
        """
        local = self.system.computes and not self.system.remote
        if first and local and (reason := self.workload.unavailable()):
            raise SystemUnavailable(reason)
        self.system.start()
        self.running = True
        self.system.ready(READY_TIMEOUT_S)
        self.placement.place_servers(self.system.server_pids())
        if first and (declared := self.system.declared_tensors()) is not None:
            try:
                self.workload.declare_tensors(*declared)
            except ValueError as exc:
                raise InputError(f"{self.spec.column}: {exc}") from None
        if first:
            self.reply_check = check_equivalent(self.system, self.spec, self.workload, self.peers)
            self.own = self.system.load_generator()
            self.idle_cpu_pct = self._idle_cpu_pct()
            self.restart = self.idle_cpu_pct > IDLE_TRIFLE_PCT

    def _idle_cpu_pct(self) -> float:
        """CPU its servers use doing nothing (an in-process system: this process's)."""

        def used() -> float:
            found = self.system.server_cpu_seconds()
            return cpu_seconds([os.getpid()], False) if found is None else found

        time.sleep(IDLE_PROBE_S)
        readings = []
        for _ in range(2):
            before, began = used(), time.perf_counter()
            time.sleep(IDLE_PROBE_S)
            readings.append(100 * (used() - before) / (time.perf_counter() - began))
        return min(readings)

    def stop(self) -> None:
        self.system.stop()
        self.running = False

    def skip(self, exc: SystemUnavailable) -> str:
        self.skipped = str(exc)
        return self.skipped

    def fail(self, exc: Exception) -> str:
        """Take it out of the run for ``exc``; an interruption ``exc`` hides goes on up."""
        raise_if_interrupted(exc)
        self.failure = failure_reason(self.system, exc)
        return self.failure

    @property
    def out(self) -> str | None:
        """Why it takes no further turn at the current point, if it does not."""
        return self.failure or self.point_failure

    def next_point(self) -> None:
        """Forget the current point's runs (and a lost load node: the next point is
        placed on the nodes still alive)."""
        self.runs, self.retaken, self.slice_s = {}, 0, None
        self.point_failure = None


@dataclass
class PointPlan:
    """How one point is measured: the load, its rounds, its budget."""

    load: Load
    point: float
    point_index: int
    run_seed: int
    budget_s: float | None


def _precise(contender: Contender, load: Load) -> bool:
    qps = [run.qps for run in contender.runs.values()]
    width = half_width_pct(*median_interval(qps))
    return width is not None and width <= load.precision_pct


def measure_rounds(
    contenders: Sequence[Contender],
    plan: PointPlan,
    on_round: Callable[[int], None],
    on_tick: Callable[[float], None],
    on_failure: Callable[[Contender], None],
    order: Callable[[int, int], list[int]] = rotation,
) -> int:
    """Rounds at one point until precise, at ``max_repeats`` or out of budget; the rounds
    run. Each contender's runs land in ``contender.runs``; a failing one leaves the rounds.
    ``order`` gives the turn order of a round (benchmarks/noise.py compares a fixed one)."""
    load = plan.load
    began = time.perf_counter()
    rounds = 0
    for round_index in range(load.max_repeats):
        on_round(round_index)
        # Those that can take their turns in slices together, then the others in turn.
        sliced = _sliceable([c for c in contenders if c.active], plan)
        if sliced:
            _interleaved_round(sliced, plan, round_index, order, on_tick)
            for contender in sliced:
                if contender.out:
                    on_failure(contender)
        for index in order(len(contenders), round_index):
            contender = contenders[index]
            if any(contender is c for c in sliced) or not contender.active:
                continue
            _take_turn(contender, plan, round_index, index, on_tick)
            if contender.out:
                on_failure(contender)
        rounds = round_index + 1
        active = [c for c in contenders if c.active]
        if rounds < load.repeats:
            continue
        if all(_precise(c, load) for c in active):
            break
        if plan.budget_s is not None and time.perf_counter() - began >= plan.budget_s:
            break
    return rounds


def _sliceable(contenders: Sequence[Contender], plan: PointPlan) -> list[Contender]:
    """The contenders that take this round's turns in slices (see :mod:`harness.interleave`):
    all that can, if two or more can and their client threads fit the machine."""
    load = plan.load
    able = [
        c
        for c in contenders
        if can_interleave(
            load, c.own is not None, c.restart, threads_here(c.system, load, plan.point)
        )
    ]
    threads = senders_of(load, plan.point) * len(able)
    return able if len(able) >= 2 and threads <= thread_budget()[0] else []


def _interleaved_round(
    contenders: Sequence[Contender],
    plan: PointPlan,
    round_index: int,
    order: Callable[[int, int], list[int]],
    on_tick: Callable[[float], None],
) -> None:
    """One round of ``contenders`` in slices, turn about; taken again (up to
    ``load.retakes`` times) while other processes took more than ``load.others_max_pct``."""
    load = plan.load
    for attempt in range(load.retakes + 1):
        active = [c for c in contenders if not c.out]
        measured, length_s = _slices_of(active, plan, round_index, order, on_tick)
        others = [run.others_pct(machine_cpus()) for _, run in measured]
        if attempt == load.retakes or all(p is None or p <= load.others_max_pct for p in others):
            break
        for contender, _ in measured:
            contender.retaken += 1
    for contender, run in measured:
        contender.slice_s = length_s
        contender.runs[round_index] = run
        try:
            contender.system.check_alive()
        except Exception as exc:
            contender.fail(exc)


def _slices_of(
    contenders: Sequence[Contender],
    plan: PointPlan,
    round_index: int,
    order: Callable[[int, int], list[int]],
    on_tick: Callable[[float], None],
) -> tuple[list[tuple[Contender, Run]], float]:
    """One interleaved round: the contenders measured and their runs, and the slices'
    length. One that fails on the way (its clients, its counters, no reply in its warm-up)
    fails, as it would in a turn of its own, and the others go on."""
    load = plan.load
    senders = plans("closed", senders_of(load, plan.point), 1, load.request_timeout_s)[0]
    members: list[Member] = []
    measured: list[tuple[Contender, dict[str, Any]]] = []
    runs: list[Run | None] = []
    length_s = 0.0
    try:
        for contender in contenders:
            host = None
            try:
                host = thread_host(contender.system, contender.workload, senders, gated=True)
                before = contender.system.stats()  # nothing in flight: see measure_turn
            except Exception as exc:
                if host is not None:
                    host.close()
                contender.fail(exc)
                continue
            members.append(Member(host, make_probe(contender.system, [os.getpid()])))
            measured.append((contender, before))
        if members:
            count = len(members)
            runs, length_s = interleave(
                members, load, lambda n: order(count, n + round_index), on_tick
            )
    finally:
        for member in members:
            member.host.close()
    kept = []
    for (contender, before), run in zip(measured, runs, strict=True):
        try:
            contender.system.check_alive()
            if run is None:
                raise SystemFailure(
                    f"no reply within request_timeout_s ({load.request_timeout_s:g} s) "
                    "in its warm-up"
                )
            run.stats_before, run.stats_after = before, contender.system.stats()
        except Exception as exc:
            contender.fail(exc)
            continue
        kept.append((contender, run))
    return kept, length_s


def _take_turn(
    contender: Contender,
    plan: PointPlan,
    round_index: int,
    system_index: int,
    on_tick: Callable[[float], None],
) -> None:
    seed = turn_seed(plan.run_seed, plan.point_index, round_index, system_index)
    try:
        if not contender.running:
            contender.start(first=False)
        contender.client_processes = client_processes(contender.system, plan.load, plan.point)
        contender.runs[round_index] = _undisturbed_turn(contender, plan, seed, on_tick)
        contender.system.check_alive()
    except LoadLost as exc:
        contender.point_failure = str(exc)
    except Exception as exc:
        contender.fail(exc)
    finally:
        if contender.restart and contender.running:
            contender.stop()


def _undisturbed_turn(
    contender: Contender, plan: PointPlan, seed: int, on_tick: Callable[[float], None]
) -> Run:
    """A turn, measured again (up to ``load.retakes`` times) while other processes took
    more than ``load.others_max_pct`` of the machine: the last one is kept regardless."""
    load = plan.load
    for attempt in range(load.retakes + 1):
        run = measure_turn(
            contender.system, contender.own, contender.workload, load, plan.point, seed, on_tick
        )
        others = run.others_pct(machine_cpus())
        if others is None or others <= load.others_max_pct or attempt == load.retakes:
            break
        contender.retaken += 1
    return run


def point_records(
    contenders: Sequence[Contender],
    load: Load,
    point: float,
    ceilings: dict[str, float | None],
    baseline: str,
) -> list[PointRecord]:
    """Each contender's record at the point, judged, with its paired ratio to the baseline."""
    records: dict[str, PointRecord] = {}
    for contender in contenders:
        runs = [contender.runs[r] for r in sorted(contender.runs)]
        if not runs:
            records[contender.label] = unmeasured(
                contender.spec, load, point, contender.out or "not measured"
            )
            continue
        record = summarize(contender.system, contender.spec, load, point, runs)
        if contender.own is not None:
            record.load_generator = getattr(contender.own, "name", type(contender.own).__name__)
        else:
            record.client_processes = contender.client_processes
            several = "processes" if record.client_processes > 1 else "threads"
            record.load_generator = "ray" if "load_nodes" in record.server_stats else several
        record.retaken_turns = contender.retaken
        record.slice_s = contender.slice_s
        judge(record, load, ceilings.get(contender.label))
        record.reply_check = contender.reply_check
        if contender.out:
            record.failure = contender.out  # it died (or lost load) at this point: void
        records[contender.label] = record
    base = next((c for c in contenders if c.label == baseline), None)
    if base is not None:
        for contender in contenders:
            if contender.label in records and contender.runs and base.runs:
                records[contender.label].ratio = paired_ratio(contender, base)
    return list(records.values())


def paired_ratio(contender: Contender, base: Contender) -> Ratio:
    """Median per-round ratios (QPS and TP50) over the rounds both measured, with intervals."""
    common = sorted(set(contender.runs) & set(base.runs))
    mine = [contender.runs[r] for r in common]
    theirs = [base.runs[r] for r in common]
    qps, qps_ci = median_interval(paired_ratios([r.qps for r in mine], [r.qps for r in theirs]))
    p50, p50_ci = median_interval(paired_ratios(_p50s(mine), _p50s(theirs)))
    return Ratio(
        baseline=base.label,
        qps=qps,
        qps_ci95=list(qps_ci) if qps_ci else None,
        p50=p50 if math.isfinite(p50) else None,
        p50_ci95=list(p50_ci) if p50_ci else None,
    )


def _p50s(runs: Sequence[Run]) -> list[float]:
    """TP50 (ms) of each run's measured windows; NaN (left out of ratios) without replies."""
    values = []
    for run in runs:
        latencies = run.measured().ok_latencies()
        values.append(percentile_ns(latencies, 50) / 1e6 if latencies.size else math.nan)
    return values


def unmeasured(
    spec: SystemSpec, load: Load, point: float, reason: str, skipped: bool = False
) -> PointRecord:
    """The record of a point that has no numbers: the system failed, or was skipped."""
    return PointRecord(
        system=spec.name,
        label=spec.column,
        clients=int(point) if load.mode == "closed" else None,
        rate=float(point) if load.mode == "open" else None,
        failure=None if skipped else reason,
        skipped=reason if skipped else None,
    )


def not_measured(contender: Contender, load: Load, point: float) -> PointRecord:
    """The record of a contender that was not measured at ``point``, saying why."""
    if contender.skipped:
        return unmeasured(contender.spec, load, point, contender.skipped, skipped=True)
    return unmeasured(contender.spec, load, point, contender.failure or "not started")
