"""Interleaved turns: gated senders, slices turn about, and runs put together from slices."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from harness.interleave import Member, Slice, compose, interleave
from harness.loadgen import Plan, ThreadHost, clock
from harness.measurement import OK, Probe, Samples
from harness.rounds import Contender, PointPlan, measure_rounds, point_records, rotation
from harness.scenario import Load

REQUEST = np.frombuffer(b"HelloWorld", dtype=np.uint8)


class LoggingClient:
    """Replies after ``service_s``; logs (system, start, end) of every call it serves."""

    def __init__(self, name: str, log: list[tuple[str, int, int]], service_s: float) -> None:
        self._name, self._log, self._service_s = name, log, service_s

    def call(self, request: np.ndarray) -> np.ndarray:
        began = clock()
        time.sleep(self._service_s)
        self._log.append((self._name, began, clock()))
        return request

    def close(self) -> None:
        pass


def _probe(cpu: list[float]) -> Probe:
    cpu[0] += 1.0  # every reading one CPU second later
    return Probe(t_ns=clock(), client_cpu_s=cpu[0], server_cpu_s=2 * cpu[0], others_cpu_s=0.0)


def _gated(name: str, log: list, senders: int, service_s: float) -> ThreadHost:
    clients = [LoggingClient(name, log, service_s) for _ in range(senders)]
    return ThreadHost(clients, [REQUEST] * senders, Plan("closed", senders, 5.0), gated=True)


def test_a_closed_gate_parks_every_sender_and_nothing_is_sent_until_it_opens():
    log: list[tuple[str, int, int]] = []
    host = _gated("a", log, senders=3, service_s=0.002)
    assert host.gate is not None
    host.go(clock(), np.iinfo(np.int64).max)
    try:
        assert host.gate.close(30.0)  # every sender parked before sending anything
        assert log == []
        opened = []
        for _ in range(3):
            began = clock()
            host.gate.open()
            time.sleep(0.03)
            assert host.gate.close(30.0)
            opened.append((began, clock()))
            calls_then = len(log)
            time.sleep(0.02)
            assert len(log) == calls_then, "a sender called while its gate was closed"
    finally:
        host.stop(clock())
    samples, calls, error = host.finish(clock() + 10**10)
    host.close()
    assert error is None and calls == len(log) == len(samples) > 0
    for _, began, ended in log:  # every call inside one opening, its reply included
        assert any(b <= began and ended <= e for b, e in opened)


def test_systems_take_slices_turn_about_and_never_send_at_once():
    log: list[tuple[str, int, int]] = []
    names = ["a", "b", "c"]
    hosts = [_gated(name, log, senders=2, service_s=0.001) for name in names]
    cpu = [0.0]
    members = [Member(host, lambda: _probe(cpu)) for host in hosts]
    load = Load(clients=[2], warmup_s=0.05, duration_s=0.3, slice_s=0.025)
    try:
        runs, length_s = interleave(members, load, lambda n: rotation(3, n))
    finally:
        for host in hosts:
            host.close()
    assert length_s == pytest.approx(0.025)
    log.sort(key=lambda call: call[1])
    # Calls of two systems never overlap: each starts after the other system's last reply.
    for (one, _, ended), (other, began, _) in itertools.pairwise(log):
        assert one == other or ended <= began
    switches = sum(1 for x, y in itertools.pairwise(log) if x[0] != y[0])
    slices = 3 * round(0.1 / 0.025)  # per system: 3 windows of 0.1 s in 0.025 s slices
    assert switches >= 3 * slices - 1  # + the warm-ups
    for run in runs:
        assert len(run.boundaries_ns) == 4
        assert run.measured_s == pytest.approx(0.3, rel=0.2)  # the slices, not the pauses
        assert run.measured().count(OK) > 0
        assert run.probe_end.server_cpu_s == pytest.approx(2 * slices)  # summed, 2 s each
        assert run.probe_end.client_cpu_s == pytest.approx(slices)
    # The first measured slices follow the rotation: a, then b, then c.
    firsts = [run.boundaries_ns[0] for run in runs]
    assert firsts == sorted(firsts)


def test_a_run_put_together_from_slices_leaves_the_pauses_out():
    probe = Probe(t_ns=0, client_cpu_s=0.0, server_cpu_s=None)
    ms = 1_000_000
    # Two slices of 10 ms, 30 ms apart; one reply a millisecond in each, and a warm-up one.
    slices = [Slice(100 * ms, 110 * ms, probe, probe), Slice(140 * ms, 150 * ms, probe, probe)]
    starts = np.array([50 * ms, 101 * ms, 141 * ms, 149 * ms], np.int64)
    samples = Samples(starts, np.full(4, ms // 2, np.int64), np.zeros(4, np.int8))
    run = compose(samples, slices, per_window=1, calls=4, error=None)
    # The second slice follows the first at once: samples 30 ms earlier, warm-up unmoved.
    assert run.samples.start_ns.tolist() == [50 * ms, 101 * ms, 111 * ms, 119 * ms]
    assert run.boundaries_ns == [100 * ms, 110 * ms, 120 * ms]
    assert run.measured_s == pytest.approx(0.02)
    assert run.qps == pytest.approx(3 / 0.02)
    assert run.probe_start.server_cpu_s is None and run.probe_end.server_cpu_s is None


@pytest.mark.parametrize("slice_s", [0.02, None])
def test_systems_on_client_threads_are_interleaved_unless_the_scenario_says_not(
    make_scenario, slice_s
):
    fast = {"clients": [1], "warmup_s": 0.02, "duration_s": 0.15, "min_duration_s": 0}
    fast["precision_pct"] = 1000  # six rounds, whatever the machine
    systems = [{"name": "pipe", "label": label} for label in ("a", "b")]
    scenario = make_scenario(systems=systems, load={**fast, "slice_s": slice_s})
    contenders = [Contender.create(scenario, spec) for spec in scenario.systems]
    for contender in contenders:
        contender.start(first=True)
    plan = PointPlan(scenario.load, 1, 0, run_seed=1, budget_s=None)
    failed: list[Contender] = []
    try:
        rounds = measure_rounds(contenders, plan, lambda r: None, lambda t: None, failed.append)
    finally:
        for contender in contenders:
            contender.stop()
    assert not failed and rounds == scenario.load.repeats
    for record in point_records(contenders, scenario.load, 1, {}, "a"):
        assert record.slice_s == slice_s
        assert record.sent == record.ok + record.errors + record.timeouts > 0
        assert record.ratio is not None and record.ratio.qps_ci95 is not None


class HangingClient:
    """Never replies until ``release`` is set (a server that stopped answering)."""

    def __init__(self, release: threading.Event) -> None:
        self._release = release

    def call(self, request: np.ndarray) -> np.ndarray:
        self._release.wait()
        return request

    def close(self) -> None:
        pass


def test_a_system_that_stops_replying_leaves_the_slices_and_the_others_go_on():
    log: list[tuple[str, int, int]] = []
    release = threading.Event()
    healthy = _gated("a", log, senders=1, service_s=0.001)
    plan = Plan("closed", 1, 0.2)
    hanging = ThreadHost([HangingClient(release)], [REQUEST], plan, gated=True)
    cpu = [0.0]
    members = [Member(host, lambda: _probe(cpu)) for host in (healthy, hanging)]
    load = Load(clients=[1], warmup_s=0.05, duration_s=0.3, slice_s=0.025, request_timeout_s=0.2)
    began = time.monotonic()
    try:
        runs, _ = interleave(members, load, lambda n: rotation(2, n))
    finally:
        release.set()
        for host in (healthy, hanging):
            host.close()
    # One wait of the timeout and the grace in its warm-up, not one per slice.
    assert time.monotonic() - began < 20
    good, cut = runs
    assert cut is None  # stuck in its warm-up: no slice measured
    assert good is not None and good.measured().count(OK) > 0
    assert len(good.boundaries_ns) == 4
