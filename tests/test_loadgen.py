"""The real load generator against small in-process test servers with known behaviour."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter

import numpy as np
import pytest

from engines.null import NullClient
from harness.loadgen import (
    START_MARGIN_NS,
    Plan,
    ProcessHost,
    Schedule,
    ThreadHost,
    clock,
    drive,
    plans,
)
from harness.measurement import CANCELLED, ERROR, OK, TIMEOUT, Run, Samples, Timing
from harness.stats import is_stable, latency_summary_ms, window_stats

REQUEST = np.frombuffer(b"HelloWorld", dtype=np.uint8)
#: Exactly three windows, no stability gate: the tests decide what they measure.
THREE_WINDOWS = Timing(warmup_s=0.1, window_s=0.6, max_windows=3, stability_pct=1000)


class StallingServer:
    """One request at a time, ``service_s`` each; the first call after ``stall_at_ns``
    holds the server for 200 ms (a GC pause, a compaction, a noisy neighbour)."""

    def __init__(self, service_s: float, stall_at_ns: int) -> None:
        self._lock = threading.Lock()
        self._service_s = service_s
        self._stall_at_ns = stall_at_ns
        self.stalled = False

    def call(self, request: np.ndarray) -> np.ndarray:
        with self._lock:
            if not self.stalled and clock() >= self._stall_at_ns:
                self.stalled = True
                time.sleep(0.2)
            time.sleep(self._service_s)
        return request

    def close(self) -> None:
        pass


def _run_stalled(plan: Plan) -> dict[str, float]:
    # The stall falls in the middle window, whatever the mode.
    stall_at = clock() + START_MARGIN_NS + int((0.1 + 0.6 + 0.3) * 1e9)
    server = StallingServer(service_s=0.001, stall_at_ns=stall_at)
    host = ThreadHost([server] * plan.senders, [REQUEST] * plan.senders, plan)
    try:
        run = drive([host], THREE_WINDOWS, plan.timeout_s)
    finally:
        host.close()
    assert server.stalled
    measured = run.measured()
    assert measured.count(OK) == len(measured) > 100
    return latency_summary_ms(measured.ok_latencies())


def test_open_loop_latency_includes_queueing_that_closed_loop_hides():
    closed = _run_stalled(Plan(mode="closed", senders=1, timeout_s=5))
    opened = _run_stalled(Plan(mode="open", senders=8, timeout_s=5, rate=200, arrival="constant"))
    # Closed loop: one request waited 200 ms, the client then simply sent less: p99 is calm.
    assert closed["max"] >= 200
    assert closed["p99"] < 20
    # Open loop at 200/s: the ~40 requests due during the stall queued behind it, and each
    # is timed from when it was due; that is over 1 % of the ~360 measured requests.
    assert opened["max"] >= 190
    assert opened["p99"] >= 100


class ChaosClient:
    """Every outcome a client can have, chosen at random, and tallied by the client itself:
    replies, errors, late replies, timeout exceptions, and one call that hangs far past
    its deadline (a client that ignores its own timeout).

    A reply or an error meant to be quick that a busy machine held up to half the deadline
    is made plainly late (and tallied so), as the load generator will see it: then no
    scheduling delay short of half the deadline, in the few instructions between the
    generator's clock and this client's, can make the two tallies differ."""

    def __init__(self, timeout_s: float, tally: Counter[str], lock: threading.Lock) -> None:
        self._timeout_s = timeout_s
        self._tally, self._lock = tally, lock
        self._rng = np.random.default_rng(id(self) % 1000)
        self.release = threading.Event()

    def _count(self, what: str) -> None:
        with self._lock:
            self._tally[what] += 1

    def _quick(self, begun_ns: int, what: str) -> None:
        """Tally a quick outcome, or, if it was not quick, make it late and tally that."""
        if clock() - begun_ns < self._timeout_s * 1e9 / 2:
            self._count(what)
        else:
            self._count("late")
            time.sleep(self._timeout_s * 1.2)

    def call(self, request: np.ndarray) -> np.ndarray:
        begun = clock()
        with self._lock:
            hang = self._tally["hang"] == 0 and self._tally["calls"] >= 200
            self._tally["calls"] += 1
        if hang:
            self._count("hang")
            self.release.wait(60)
            return request
        draw = self._rng.random()
        if draw < 0.1:
            self._quick(begun, "error")
            raise ValueError("boom")
        if draw < 0.15:
            self._count("timeout_exception")
            raise TimeoutError("deadline")
        if draw < 0.2:
            self._count("late")
            time.sleep(self._timeout_s * 1.2)
            return request
        time.sleep(0.0005)
        self._quick(begun, "ok")
        return request

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_accounting_never_loses_a_request(mode):
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    timeout_s = 0.05
    clients = [ChaosClient(timeout_s, tally, lock) for _ in range(4)]
    plan = Plan(mode=mode, senders=4, timeout_s=timeout_s, rate=1500, arrival="poisson")
    host = ThreadHost(clients, [REQUEST] * 4, plan)
    timing = Timing(warmup_s=0.1, window_s=0.3, max_windows=3, stability_pct=1000)
    started = time.monotonic()
    try:
        run = drive([host], timing, timeout_s)
    finally:
        for client in clients:
            client.release.set()
        host.close()
    # Nothing waits forever: the hung call was given up on at its deadline plus the grace.
    assert time.monotonic() - started < 0.1 + 0.9 + timeout_s + 2 + 1.5
    assert tally["hang"] == 1
    samples = run.samples
    outcomes = {code: samples.count(code) for code in (OK, ERROR, TIMEOUT, CANCELLED)}
    assert sum(outcomes.values()) == len(samples)
    # Every call the clients saw is one sample, ending as the client made it end.
    assert run.calls == tally["calls"]
    never_sent = len(samples) - outcomes[CANCELLED] - run.calls
    assert never_sent >= 0 and (mode == "open" or never_sent == 0)
    assert outcomes[ERROR] == tally["error"]
    timed_out = tally["late"] + tally["timeout_exception"] + 1 + never_sent
    if mode == "closed":
        assert (outcomes[OK], outcomes[TIMEOUT]) == (tally["ok"], timed_out)
    else:  # a good reply after its *scheduled* deadline (it queued) is a timeout too
        assert outcomes[OK] + outcomes[TIMEOUT] == tally["ok"] + timed_out
        assert outcomes[TIMEOUT] >= timed_out
    assert run.first_error is not None
    # The measured windows obey sent == ok + errors + timeouts, nothing cancelled in them.
    measured = run.measured()
    assert len(measured) == measured.count(OK) + measured.count(ERROR) + measured.count(TIMEOUT)
    assert measured.count(ERROR) > 0 and measured.count(TIMEOUT) > 0


class PacedClient:
    """A server that takes ``service_s``, or, if it ``drifts``, 4 times that more each second."""

    def __init__(self, drifts: bool, service_s: float = 0.002) -> None:
        self._drifts = drifts
        self._service_s = service_s
        self._born = time.monotonic()

    def call(self, request: np.ndarray) -> np.ndarray:
        slower = 4 * (time.monotonic() - self._born) if self._drifts else 0
        time.sleep(self._service_s * (1 + slower))
        return request

    def close(self) -> None:
        pass


class TickingClient:
    """A server that replies on the next tick of a fixed clock (every ``period_s``).

    A busy machine can delay a wake-up, but not the next tick: its rate stays one reply per
    tick and its median latency one period, whatever the load (a 2 ms sleep stretched by
    a busy scheduler swings both by far more than 25 % from one window to the next)."""

    def __init__(self, period_s: float) -> None:
        self._period_s = period_s

    def call(self, request: np.ndarray) -> np.ndarray:
        time.sleep(self._period_s - time.monotonic() % self._period_s)
        return request

    def close(self) -> None:
        pass


def stable_at(run: Run, windows: int, pct: float) -> bool:
    """The stability rule on the first ``windows`` windows, as the controller saw them when
    it decided: with the replies done by then."""
    end = run.boundaries_ns[windows]
    s = run.samples
    done = s.start_ns + s.latency_ns < end
    seen = Samples(s.start_ns[done], s.latency_ns[done], s.outcome[done])
    return is_stable(window_stats(seen, run.boundaries_ns[: windows + 1]), pct)


@pytest.mark.parametrize("drifts", [False, True])
def test_windows_stop_when_stable_and_not_before(drifts):
    timing = Timing(warmup_s=0.1, window_s=0.5, max_windows=5, stability_pct=25)
    plan = Plan(mode="closed", senders=2, timeout_s=1)
    # 20 ms ticks (50 replies a window), or 20 ms growing to 200 ms: 1.6 times slower from
    # the third window to the fifth, which no scheduler delay of a busy machine evens out.
    clients = [PacedClient(True, 0.02) if drifts else TickingClient(0.02) for _ in range(2)]
    host = ThreadHost(clients, [REQUEST] * 2, plan)
    try:
        run = drive([host], timing, 1.0)
    finally:
        host.close()
    windows = len(run.boundaries_ns) - 1
    if drifts:  # slower and slower (a leak, a throttling CPU): never stable
        assert (windows, run.stable) == (5, False)
    else:
        # Stable from the third window, unless this machine kept the client from running
        # for a fifth of a window or more (ticks missed; the windows show it): then it stops
        # at the first three windows that are stable again, never before.
        first = next(n for n in range(3, 6) if stable_at(run, n, 25) or n == 5)
        assert (windows, run.stable) == (first, True)
    assert run.measured_s == pytest.approx(1.5, abs=1e-6)


def test_open_loop_keeps_its_rate_and_arrivals_are_as_asked():
    constant = Schedule(Plan(mode="open", senders=1, timeout_s=1, rate=400, arrival="constant"), 0)
    assert [constant.at(j) for j in range(3)] == [0, 2_500_000, 5_000_000]
    poisson = Schedule(Plan(mode="open", senders=1, timeout_s=1, rate=1000, seed=3), 0)
    gaps = np.diff([poisson.at(j) for j in range(20_000)])
    assert gaps.min() >= 0
    assert gaps.mean() == pytest.approx(1e6, rel=0.03)  # exponential: mean 1/rate
    assert gaps.std() == pytest.approx(1e6, rel=0.05)  # ... and std 1/rate
    plan = Plan(mode="open", senders=4, timeout_s=1, rate=500, arrival="poisson", seed=1)
    host = ThreadHost([PacedClient(False) for _ in range(4)], [REQUEST] * 4, plan)
    try:
        run = drive([host], THREE_WINDOWS, 1.0)
    finally:
        host.close()
    assert len(run.measured()) / run.measured_s == pytest.approx(500, rel=0.12)


def test_client_processes_share_the_clock_and_merge_exactly():
    factory = functools.partial(NullClient, "echo", {})
    host_plans = plans("closed", senders=3, processes=2, timeout_s=1.0)
    assert [p.senders for p in host_plans] == [2, 1]
    hosts = [ProcessHost(factory, REQUEST, plan) for plan in host_plans]
    try:
        for host in hosts:
            host.wait_ready()
        pids = {pid for host in hosts for pid in host.pids()}
        run = drive(hosts, Timing(0.1, 0.2, 3, 1000), 1.0)
    finally:
        for host in hosts:
            host.close()
    assert len(pids) == 2
    samples = run.samples
    assert len(samples) == run.calls > 1000
    assert samples.count(OK) == len(samples)
    # One clock for all processes: every start lies between go and the last boundary.
    t0 = run.boundaries_ns[0] - int(0.1 * 1e9)
    assert samples.start_ns.min() >= t0 - 1_000_000
    assert samples.start_ns.max() <= run.boundaries_ns[-1] + 50_000_000
