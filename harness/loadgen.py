"""The load generator: closed or open loop, client threads here or in client processes.

Two layers:

- A **host** runs worker threads, each with its own client, and records every request it
  starts as one sample (start, latency, outcome) in append-only ``array`` columns, with no
  lock on the hot path. :class:`ThreadHost` runs them in this process (required for
  in-process systems); :class:`ProcessHost` runs a :class:`ThreadHost` in a spawned client
  process whose clients come from the system's picklable factory (RPC systems, to escape
  the GIL). Both obey the same five calls, so the controller cannot tell them apart.
- The **controller** (:func:`drive`) starts every host at one instant of the shared
  monotonic clock, waits out the warm-up, then closes measurement windows one by one,
  probing the server (CPU, batch statistics) at each boundary, until the last three windows
  are stable or ``max_windows`` is reached. It then stops the hosts and collects the rest.

Closed loop: each worker sends, waits, repeats; latency runs from the actual send.
Open loop: requests are *scheduled* (constant or Poisson arrivals) and latency runs from
the scheduled time, so time a request spends waiting for a free sender or a stalled server
counts (no coordinated omission, as in wrk2 and MLPerf LoadGen).

Accounting never loses a request: a sample is started before the call and finished after
it; whatever a host still has in flight at its deadline (a client ignoring its timeout) is
recorded as a timeout, and every sample ends as exactly one of ok/error/timeout/cancelled.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from harness.errors import SystemFailure
from harness.measurement import (
    CANCELLED,
    ERROR,
    OK,
    STABLE_SET,
    TIMEOUT,
    Probe,
    Run,
    Samples,
    Timing,
)
from harness.stats import is_stable, window_stats
from harness.system import Client

clock = time.perf_counter_ns
_H = TypeVar("_H", bound="_Starting")
#: Hosts start this long after the controller decides to go (client processes are ready).
START_MARGIN_NS = 50_000_000
#: How long a host's threads get past ``end + request timeout`` before being abandoned.
GRACE_NS = 2_000_000_000
#: Longest single sleep of a waiting open-loop sender, so a stop is noticed quickly.
MAX_NAP_NS = 20_000_000


@dataclass(frozen=True)
class Plan:
    """What one host does: how many senders, and (open loop) at which rate from when."""

    mode: Literal["closed", "open"]
    senders: int
    timeout_s: float
    rate: float = 0.0
    arrival: Literal["constant", "poisson"] = "poisson"
    #: Open loop: this host's first arrival is ``phase_ns`` after ``t0`` (constant arrivals
    #: of several hosts interleave evenly); Poisson streams differ by ``seed``.
    phase_ns: int = 0
    seed: int = 0


# -- recording -------------------------------------------------------------------------


class Recorder:
    """One worker's samples. ``start`` grows before a call, the other two after it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_ns = int(timeout_s * 1e9)
        self.start = array("q")
        self.latency = array("q")
        self.outcome = array("b")
        self.calls = 0
        self.first_error: str | None = None
        self._read = 0

    def send(self, call: Callable[[Any], Any], request: Any, due_ns: int, sent_ns: int) -> None:
        """Make one call (its start is already recorded) and record how it ended.

        The deadline runs from ``due_ns`` (the scheduled send in open loop): a reply after
        it is a timeout. An exception is a timeout if it is one, or if it came after the
        client had waited its own timeout since the actual send (``sent_ns``), which is how
        client libraries' own timeout errors look; any other exception is an error.
        """
        self.calls += 1
        try:
            call(request)
        except Exception as exc:
            now = clock()
            expired = isinstance(exc, TimeoutError) or now - sent_ns >= self.timeout_ns
            self.finish(now - due_ns, TIMEOUT if expired else ERROR)
            if self.first_error is None:
                self.first_error = f"{type(exc).__name__}: {exc}"
            return
        took = clock() - due_ns
        self.finish(took, OK if took < self.timeout_ns else TIMEOUT)

    def finish(self, latency_ns: int, outcome: int) -> None:
        self.latency.append(latency_ns)
        self.outcome.append(outcome)  # last: a sample counts as finished from here on

    def take(self, abandon_at_ns: int | None = None) -> Samples:
        """Samples finished since the last take; with ``abandon_at_ns``, also the ones still
        in flight, as timeouts (the worker is given up on and never read again)."""
        done = len(self.outcome)  # read before ``start``: finished samples are a prefix
        started = len(self.start)
        begin, self._read = self._read, done
        starts = np.frombuffer(self.start[begin:done], np.int64)
        latency = np.frombuffer(self.latency[begin:done], np.int64)
        outcome = np.frombuffer(self.outcome[begin:done], np.int8)
        if abandon_at_ns is not None and started > done:
            stuck = np.frombuffer(self.start[done:started], np.int64)
            starts = np.concatenate([starts, stuck])
            latency = np.concatenate([latency, np.maximum(abandon_at_ns - stuck, 0)])
            outcome = np.concatenate([outcome, np.full(stuck.size, TIMEOUT, np.int8)])
            self._read = started
        return Samples(starts, latency, outcome)


class _Control:
    """Shared by a host's workers: when to start, when to stop sending."""

    def __init__(self) -> None:
        self.t0_ns = 0
        self.end_ns = 0
        self.go = threading.Event()


class Gate:
    """Lets a host's closed-loop senders send only while it is open (see
    :mod:`harness.interleave`: systems measured in turns of a tenth of a second).

    A sender checks ``is_open`` before each request and parks while it is closed;
    :meth:`close` returns once every sender has parked, so nothing of this host is in
    flight when the next system's slice begins. It starts closed."""

    def __init__(self, senders: int) -> None:
        self.is_open = False
        self._senders = senders
        self._parked = 0
        self._ended = False
        self._changed = threading.Condition()

    def open(self) -> None:
        with self._changed:
            self.is_open = True
            self._changed.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Close, and wait (at most ``timeout_s``) until every sender has parked."""
        with self._changed:
            self.is_open = False
            return self._changed.wait_for(lambda: self._parked >= self._senders, timeout_s)

    def end(self) -> None:
        """Release every sender for good (they see the host's end and leave)."""
        with self._changed:
            self._ended = self.is_open = True
            self._changed.notify_all()

    def park(self) -> None:
        """A sender waits here until the gate opens."""
        with self._changed:
            self._parked += 1
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.is_open or self._ended)
            self._parked -= 1


def _sleep_until(t_ns: int) -> None:
    delay = t_ns - clock()
    if delay > 0:
        time.sleep(delay / 1e9)


def _closed_worker(call: Callable[[Any], Any], request: Any, rec: Recorder, ctl: _Control) -> None:
    send, starts = rec.send, rec.start
    ctl.go.wait()
    _sleep_until(ctl.t0_ns)
    while (sent := clock()) < ctl.end_ns:
        starts.append(sent)
        send(call, request, sent, sent)


def _gated_worker(
    call: Callable[[Any], Any], request: Any, rec: Recorder, ctl: _Control, gate: Gate
) -> None:
    """A closed-loop sender that sends only while its host's gate is open."""
    send, starts = rec.send, rec.start
    ctl.go.wait()
    while True:
        if not gate.is_open:
            gate.park()
        if (sent := clock()) >= ctl.end_ns:
            break
        starts.append(sent)
        send(call, request, sent, sent)


def _open_worker(
    call: Callable[[Any], Any],
    request: Any,
    rec: Recorder,
    ctl: _Control,
    schedule: Schedule,
    claim: Callable[[], int],
) -> None:
    send, starts = rec.send, rec.start
    ctl.go.wait()
    while (due := schedule.at(claim())) < ctl.end_ns:
        starts.append(due)
        while (delay := due - clock()) > 0 and due < ctl.end_ns:
            time.sleep(min(delay, MAX_NAP_NS) / 1e9)
        if due >= ctl.end_ns:  # stopped while waiting: never sent, outside the measurement
            rec.finish(0, CANCELLED)
            return
        late = clock() - due
        if late >= rec.timeout_ns:  # its deadline passed before a sender was free
            rec.finish(late, TIMEOUT)
        else:
            send(call, request, due, clock())


class Schedule:
    """Open-loop send times: ``at(j)`` is the j-th arrival on the shared clock.

    Poisson gaps are drawn from a seeded generator in blocks, extended under a lock the
    first time a sender needs one; constant arrivals are computed directly.
    """

    BLOCK = 8192

    def __init__(self, plan: Plan, t0_ns: int) -> None:
        self._start = t0_ns + plan.phase_ns
        self._gap_ns = 1e9 / plan.rate
        self._poisson = plan.arrival == "poisson"
        self._rng = np.random.default_rng(plan.seed)
        self._blocks: list[np.ndarray] = []
        self._last = float(self._start)
        self._lock = threading.Lock()

    def at(self, j: int) -> int:
        if not self._poisson:
            return self._start + int(j * self._gap_ns)
        block, offset = divmod(j, self.BLOCK)
        while block >= len(self._blocks):
            with self._lock:
                if block >= len(self._blocks):
                    gaps = self._rng.exponential(self._gap_ns, self.BLOCK)
                    times = self._last + np.cumsum(gaps)
                    self._last = float(times[-1])
                    self._blocks.append(times.astype(np.int64))
        return int(self._blocks[block][offset])


# -- hosts -----------------------------------------------------------------------------


class Host(Protocol):
    """Where senders run. The controller calls these in order: go, collect*, stop, finish."""

    def go(self, t0_ns: int, end_ns: int) -> None: ...

    def collect(self) -> Samples: ...

    def stop(self, end_ns: int) -> None: ...

    def finish(self, deadline_ns: int) -> tuple[Samples, int, str | None]:
        """Wait for the senders until ``deadline_ns``; the remaining samples (anything
        still in flight then is a timeout), the number of calls made and the first error."""
        ...

    def pids(self) -> list[int]: ...

    def close(self) -> None: ...


class ThreadHost:
    """Senders as threads of this process, one client each; with ``gated``, closed-loop
    senders that send only while :attr:`gate` is open."""

    def __init__(
        self, clients: Sequence[Client], requests: Sequence[Any], plan: Plan, gated: bool = False
    ) -> None:
        self.clients = list(clients)
        self._requests = list(requests)
        self._plan = plan
        self._ctl = _Control()
        self._recorders = [Recorder(plan.timeout_s) for _ in self.clients]
        self._threads: list[threading.Thread] = []
        if gated and plan.mode != "closed":
            raise ValueError("only closed-loop senders can be gated")
        self.gate = Gate(len(self.clients)) if gated else None

    def go(self, t0_ns: int, end_ns: int) -> None:
        ctl, plan = self._ctl, self._plan
        ctl.t0_ns, ctl.end_ns = t0_ns, end_ns
        if plan.mode == "open":
            schedule = Schedule(plan, t0_ns)
            claim = itertools.count().__next__  # atomic under the GIL
        workers = zip(self.clients, self._requests, self._recorders, strict=True)
        for index, (client, request, rec) in enumerate(workers):
            if plan.mode == "open":
                args: tuple[Any, ...] = (client.call, request, rec, ctl, schedule, claim)
                target: Callable[..., None] = _open_worker
            elif self.gate is not None:
                args, target = (client.call, request, rec, ctl, self.gate), _gated_worker
            else:
                args, target = (client.call, request, rec, ctl), _closed_worker
            thread = threading.Thread(target=target, args=args, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        ctl.go.set()

    def collect(self) -> Samples:
        return Samples.concat([rec.take() for rec in self._recorders])

    def stop(self, end_ns: int) -> None:
        self._ctl.end_ns = min(self._ctl.end_ns, end_ns)
        if self.gate is not None:
            self.gate.end()

    def finish(self, deadline_ns: int) -> tuple[Samples, int, str | None]:
        for thread in self._threads:
            thread.join(max(0.0, (deadline_ns - clock()) / 1e9))
        now = clock()
        samples = Samples.concat([rec.take(abandon_at_ns=now) for rec in self._recorders])
        calls = sum(rec.calls for rec in self._recorders)
        first = next((r.first_error for r in self._recorders if r.first_error), None)
        return samples, calls, first

    def pids(self) -> list[int]:
        return []

    def close(self) -> None:
        if all(not thread.is_alive() for thread in self._threads):
            for client in self.clients:
                client.close()
        # A sender stuck in a call keeps its client: closing it under the call could crash.


def _host_main(conn: Connection, factory: Callable[[], Client], request: Any, plan: Plan) -> None:
    """A client process: build the clients, then obey the controller until ``finish``."""
    host: ThreadHost | None = None
    try:
        clients = [factory() for _ in range(plan.senders)]
        host = ThreadHost(clients, [request] * plan.senders, plan)
        conn.send(("ready", None))
        while True:
            command, argument = conn.recv()
            if command == "go":
                host.go(*argument)
            elif command == "collect":
                conn.send(("samples", host.collect()))
            elif command == "stop":
                host.stop(argument)
            elif command == "finish":
                conn.send(("finished", host.finish(argument)))
                return
    except EOFError:  # the controller went away
        return
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if host is not None:
            host.close()


class ProcessHost:
    """A :class:`ThreadHost` in a spawned client process (its own GIL, its own clients)."""

    SPAWN_TIMEOUT_S = 60.0

    def __init__(self, factory: Callable[[], Client], request: Any, plan: Plan) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_host_main, args=(child, factory, request, plan), daemon=True
        )
        self._process.start()
        child.close()
        self._finished = False

    def wait_ready(self) -> None:
        self._expect("ready", self.SPAWN_TIMEOUT_S)

    def _expect(self, kind: str, timeout_s: float) -> Any:
        if not self._conn.poll(max(timeout_s, 0.0)):
            raise SystemFailure(f"client process {self._process.pid}: no answer ({kind})")
        try:
            got, payload = self._conn.recv()
        except EOFError:
            raise SystemFailure(
                f"client process {self._process.pid} exited (code {self._process.exitcode})"
            ) from None
        if got != kind:
            raise SystemFailure(f"client process {self._process.pid}: {payload}")
        return payload

    def go(self, t0_ns: int, end_ns: int) -> None:
        self._conn.send(("go", (t0_ns, end_ns)))

    def collect(self) -> Samples:
        self._conn.send(("collect", None))
        return self._expect("samples", 30.0)

    def stop(self, end_ns: int) -> None:
        self._conn.send(("stop", end_ns))

    def finish(self, deadline_ns: int) -> tuple[Samples, int, str | None]:
        self._conn.send(("finish", deadline_ns))
        found = self._expect("finished", (deadline_ns - clock()) / 1e9 + 10.0)
        self._finished = True
        return found

    def pids(self) -> list[int]:
        return [self._process.pid] if self._process.pid else []

    def close(self) -> None:
        """After ``finish`` the process exits by itself; otherwise (an aborted run) stop it."""
        if not self._finished:
            self._process.terminate()
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


class _Starting(Protocol):
    def wait_ready(self) -> None: ...

    def close(self) -> None: ...


def all_ready(hosts: list[_H]) -> list[_H]:
    """Wait until every host (a client process, a Ray actor) is ready; if one fails or the
    wait is interrupted, close them all, so no sender outlives a failed start."""
    try:
        for host in hosts:
            host.wait_ready()
    except BaseException:
        for host in hosts:
            host.close()
        raise
    return hosts


def split(total: int, parts: int) -> list[int]:
    """``total`` senders over at most ``parts`` hosts, as evenly as possible, none empty."""
    parts = max(1, min(parts, total))
    return [total // parts + (i < total % parts) for i in range(parts)]


def plans(
    mode: Literal["closed", "open"],
    senders: int,
    processes: int,
    timeout_s: float,
    rate: float = 0.0,
    arrival: Literal["constant", "poisson"] = "poisson",
    seed: int = 0,
) -> list[Plan]:
    """One plan per host: senders split evenly; open-loop rate split in proportion."""
    counts = split(senders, processes)
    gap_ns = 1e9 / rate if rate else 0.0
    return [
        Plan(
            mode=mode,
            senders=count,
            timeout_s=timeout_s,
            rate=rate * count / senders,
            arrival=arrival,
            phase_ns=int(index * gap_ns),
            seed=seed * 1000 + index,
        )
        for index, count in enumerate(counts)
    ]


# -- the controller --------------------------------------------------------------------


def _wait(until_ns: int, began_ns: int, on_tick: Callable[[float], None] | None) -> None:
    while (left := until_ns - clock()) > 0:
        time.sleep(min(left, 100_000_000) / 1e9)
        if on_tick:
            on_tick((clock() - began_ns) / 1e9)


def _failing(samples: Samples, begin_ns: int, end_ns: int) -> bool:
    """A window where requests were sent and none succeeded: waiting longer shows nothing."""
    window = samples.sent_between(begin_ns, end_ns)
    return len(window) > 0 and window.count(OK) == 0


def drive(
    hosts: Sequence[Host],
    timing: Timing,
    timeout_s: float,
    probe: Callable[[], Probe] | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> Run:
    """Warm up, then add windows until stable (or ``max_windows``); see the module doc."""
    window_ns = int(timing.window_s * 1e9)
    t0 = clock() + START_MARGIN_NS
    boundaries = [t0 + int(timing.warmup_s * 1e9)]
    cap = boundaries[0] + timing.max_windows * window_ns
    parts: list[Samples] = []
    probes: list[Probe] = []
    stopped = False
    try:
        for host in hosts:
            host.go(t0, cap)
        _wait(boundaries[0], t0, on_tick)
        if probe:
            probes.append(probe())
        while True:
            boundaries.append(boundaries[-1] + window_ns)
            _wait(boundaries[-1], t0, on_tick)
            parts.extend(host.collect() for host in hosts)
            if probe:
                probes.append(probe())
            so_far = Samples.concat(parts)
            windows = window_stats(so_far, boundaries)
            if (
                is_stable(windows, timing.stability_pct)
                or len(windows) >= timing.max_windows
                or _failing(so_far, boundaries[-2], boundaries[-1])
            ):
                break
        for host in hosts:
            host.stop(boundaries[-1])
        stopped = True
        deadline = boundaries[-1] + int(timeout_s * 1e9) + GRACE_NS
        calls, first_error = 0, None
        for host in hosts:
            rest, host_calls, host_error = host.finish(deadline)
            parts.append(rest)
            calls += host_calls
            first_error = first_error or host_error
    finally:
        if not stopped:  # interrupted or failed: stop sending at once, wait briefly
            for host in hosts:
                host.stop(0)
    samples = Samples.concat(parts)
    stable = is_stable(window_stats(samples, boundaries), timing.stability_pct)
    run = Run(samples, boundaries, stable, calls, first_error)
    if probes:
        run.probe_start = probes[-STABLE_SET - 1 :][0]
        run.probe_end = probes[-1]
    return run
