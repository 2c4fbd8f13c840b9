"""Interleaved turns: the systems of a round measured turn about, a tenth of a second each.

The host's speed changes every second or so (two shared vCPUs: see the README's "What a
small shared VM allows"). Two systems measured one after the other, each for seconds, see
two different machines, and their ratio carries the difference: 14 % from round to round
for 0.8 s turns, against 6.7 % when they alternate every 0.1 s
(``benchmarks/alternation.py``). So a round gives every system's clients their own gate:
all clients are made and warmed up first, then the gates open one at a time, for
``slice_s`` each, in an order rotated from slice to slice, until every system has had
``duration_s`` of slices. A gate closes only when its senders are parked (nothing in
flight), so no two systems ever send at once.

Each system's :class:`~harness.measurement.Run` is then put together from its slices on a
time axis without its pauses (every sample moved back by the pauses before it), and its
CPU readings are summed over its slices, so everything that reads a contiguous turn (the
windows, QPS, TP50, CPU %, other processes' share) reads it unchanged. A request still in
flight at the end of a slice finishes, on that axis, at the start of the next one.

Only closed-loop client threads of the harness have gates; open-loop schedules, client
processes, cluster nodes, a system's own load generator, a server stopped between its
turns and the per-window stability rule keep contiguous turns (:func:`can_interleave`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.loadgen import GRACE_NS, ThreadHost, clock
from harness.measurement import STABLE_SET, Probe, Run, Samples
from harness.scenario import Load

#: A slice lasts at least this many of the slowest system's warm-up TP50, so waiting for
#: the last reply at its end stays a small share of it.
LATENCIES_PER_SLICE = 20


@dataclass(frozen=True)
class Member:
    """One system of an interleaved round: its gated senders and its readings."""

    host: ThreadHost
    probe: Callable[[], Probe]


@dataclass(frozen=True)
class Slice:
    """One opening of a system's gate: from ``begin_ns`` to ``end_ns`` it could send;
    ``before`` and ``after`` were read with nothing of it in flight."""

    begin_ns: int
    end_ns: int
    before: Probe
    after: Probe


def can_interleave(load: Load, own_load_generator: bool, restarted: bool, threads: bool) -> bool:
    """Whether a system can take its turn in slices (see the module doc)."""
    return (
        load.slice_s is not None
        and load.mode == "closed"
        and load.stability_pct is None
        and not own_load_generator
        and not restarted
        and threads
    )


def slice_length_s(load: Load, warm_up_p50_ns: float) -> float:
    """``load.slice_s``, lengthened for slow replies, at most one window."""
    assert load.slice_s is not None
    wanted = max(load.slice_s, LATENCIES_PER_SLICE * warm_up_p50_ns / 1e9)
    return min(wanted, load.duration_s / STABLE_SET)


def interleave(
    members: Sequence[Member],
    load: Load,
    order: Callable[[int], list[int]],
    on_tick: Callable[[float], None] | None = None,
) -> tuple[list[Run | None], float]:
    """Warm every member up, then measure them in slices, turn about; their runs and the
    slices' length.

    ``order(n)`` gives the members' order in the ``n``-th turn of slices. A member whose
    senders do not all park within the request timeout (a reply that never comes) takes
    no further slice: its run ends there (None if it had no measured slice yet), and its
    stuck requests count as timeouts."""
    began = clock()
    drain_s = load.request_timeout_s + GRACE_NS / 1e9
    samples: list[list[Samples]] = [[] for _ in members]
    slices: list[list[Slice]] = [[] for _ in members]
    stuck: set[int] = set()
    try:
        for member in members:
            member.host.go(clock(), np.iinfo(np.int64).max)
        for member in members:
            assert member.host.gate is not None, "interleaving needs gated senders"
            member.host.gate.close(drain_s)
        warm_p50 = 0.0
        for index, member in enumerate(members):
            if not _open_for(member, load.warmup_s, drain_s)[2]:
                stuck.add(index)
            warm = member.host.collect()
            samples[index].append(warm)
            if len(warm):
                warm_p50 = max(warm_p50, float(np.median(warm.latency_ns)))
        length_s = slice_length_s(load, warm_p50)
        per_window = max(1, round(load.duration_s / STABLE_SET / length_s))
        for number in range(STABLE_SET * per_window):
            for index in order(number):
                if index in stuck:
                    continue
                member = members[index]
                before = member.probe()
                begin, end, parked = _open_for(member, length_s, drain_s)
                slices[index].append(Slice(begin, end, before, member.probe()))
                samples[index].append(member.host.collect())
                if not parked:
                    stuck.add(index)
            if on_tick:
                on_tick((clock() - began) / 1e9)
    finally:
        now = clock()
        for member in members:
            member.host.stop(now)
    deadline = clock() + int(drain_s * 1e9)
    results = [member.host.finish(deadline) for member in members]
    runs: list[Run | None] = []
    for index, (rest, calls, first_error) in enumerate(results):
        parts = Samples.concat([*samples[index], rest])
        mine = slices[index]
        runs.append(compose(parts, mine, per_window, calls, first_error) if mine else None)
    return runs, length_s


def _open_for(member: Member, seconds: float, drain_s: float) -> tuple[int, int, bool]:
    """Open the member's gate for ``seconds``: when it opened, when it closed, and whether
    every sender parked within ``drain_s`` after."""
    gate = member.host.gate
    assert gate is not None
    begin = clock()
    gate.open()
    until = begin + int(seconds * 1e9)
    while (left := until - clock()) > 0:
        time.sleep(left / 1e9)
    end = clock()
    return begin, end, gate.close(drain_s)


def compose(
    samples: Samples, slices: Sequence[Slice], per_window: int, calls: int, error: str | None
) -> Run:
    """One system's run out of its slices, on a time axis without its pauses: windows of
    ``per_window`` slices, CPU readings summed over the slices (see the module doc)."""
    begins = np.array([piece.begin_ns for piece in slices], np.int64)
    lengths = np.array([piece.end_ns - piece.begin_ns for piece in slices], np.int64)
    axis = begins[0] + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pause_before = begins - axis
    # A sample belongs to the last slice opened before it was sent; the warm-up's stay put.
    owner = np.searchsorted(begins, samples.start_ns, side="right") - 1
    moved = samples.start_ns - np.where(owner >= 0, pause_before[np.maximum(owner, 0)], 0)
    end = int(axis[-1] + lengths[-1])
    windows = max(1, len(slices) // per_window)  # a run cut short: fewer, or one
    boundaries = [int(axis[i * per_window]) for i in range(windows)] + [end]
    run = Run(Samples(moved, samples.latency_ns, samples.outcome), boundaries, True, calls, error)
    run.probe_start, run.probe_end = _summed_probes(slices, int(axis[0]))
    return run


def _summed_probes(slices: Sequence[Slice], origin_ns: int) -> tuple[Probe, Probe]:
    """Readings as if the slices had been one stretch: each reading's changes summed."""

    def total(read: Callable[[Probe], float | None]) -> float | None:
        changes = [(read(s.after), read(s.before)) for s in slices]
        if any(a is None or b is None for a, b in changes):
            return None
        return sum(a - b for a, b in changes)  # type: ignore[operator]

    wall = sum(piece.after.t_ns - piece.before.t_ns for piece in slices)
    server = total(lambda p: p.server_cpu_s)
    others = total(lambda p: p.others_cpu_s)
    start = Probe(
        t_ns=origin_ns,
        client_cpu_s=0.0,
        server_cpu_s=None if server is None else 0.0,
        others_cpu_s=None if others is None else 0.0,
        gpu=slices[0].before.gpu,
    )
    end = Probe(
        t_ns=origin_ns + wall,
        client_cpu_s=total(lambda p: p.client_cpu_s) or 0.0,
        server_cpu_s=server,
        others_cpu_s=others,
        gpu=slices[-1].after.gpu,
    )
    return start, end
