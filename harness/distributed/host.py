"""A host of the load generator that is a Ray actor on a cluster node.

:class:`RayHost` obeys the controller's :class:`~harness.loadgen.Host` calls like a
:class:`~harness.loadgen.ProcessHost`, but its :class:`~harness.loadgen.ThreadHost` lives
in a Ray actor (:class:`LoadNode`) placed on a chosen node, with clients built there from
the system's picklable factory and the same :class:`~harness.loadgen.Plan`. Samples come
back through Ray's object store as the same numpy columns; their send times are moved from
the node's clock to the coordinator's (:mod:`harness.distributed.clock`), so the
controller's windows and the lossless merge work unchanged.

Every Ray failure becomes a one-line :class:`~harness.errors.SystemFailure` naming the
node, and nothing waits forever. An actor or node that dies or stops answering is a
:class:`~harness.errors.LoadLost`: it voids the point in progress, not the system measured
(the next point is placed on the nodes still alive).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import psutil

from harness.distributed.clock import Offset, measure
from harness.errors import BenchError, LoadLost, SystemFailure
from harness.loadgen import Plan, ThreadHost, clock
from harness.measurement import ERROR, OK, TIMEOUT, Run, Samples
from harness.system import Client

#: A fresh actor starts a Python worker on its node and connects its clients.
START_TIMEOUT_S = 120.0
#: Any other call answers within this (a collect moves one window's samples).
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Node:
    """A load node of the cluster."""

    node_id: str
    address: str
    index: int

    @property
    def name(self) -> str:
        return f"load node {self.index} ({self.address}, {self.node_id[:8]})"


def ray_get(
    ray: ModuleType,
    ref: Any,
    who: str,
    what: str,
    timeout_s: float,
    lost: type[SystemFailure] = SystemFailure,
) -> Any:
    """``ray.get(ref)`` with every Ray failure as one line about ``who``: an actor that died
    or does not answer within ``timeout_s`` raises ``lost``; an error it raised itself is
    re-raised if it is a :class:`~harness.errors.BenchError` (its message is for the user),
    else a :class:`SystemFailure` naming its type."""
    exceptions = ray.exceptions
    try:
        return ray.get(ref, timeout=max(timeout_s, 1.0))
    except exceptions.GetTimeoutError:
        raise lost(f"{who}: its actor did not answer ({what}) in {timeout_s:.0f} s") from None
    except exceptions.RayActorError as exc:
        raise lost(f"{who} lost during {what}: {_first_line(exc)}") from None
    except exceptions.RayTaskError as exc:
        cause = exc.cause if exc.cause is not None else exc
        if isinstance(cause, BenchError):
            raise cause from None
        raise SystemFailure(f"{who}: {type(cause).__name__}: {_first_line(cause)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class LoadNode:
    """The body of a load actor: a :class:`ThreadHost` built on its node, and its clocks."""

    def __init__(self, factory: Callable[[], Client], request: Any, plan: Plan) -> None:
        clients: list[Client] = []
        try:
            while len(clients) < plan.senders:
                clients.append(factory())
        except BaseException:
            for client in clients:
                client.close()
            raise
        self._host = ThreadHost(clients, [request] * plan.senders, plan)
        self._process = psutil.Process()

    def ready(self) -> str:
        """The node it runs on (placement is checked, not assumed)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def clocks(self) -> tuple[int, int]:
        return clock(), time.time_ns()

    def _cpu_s(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def go(self, t0_ns: int, end_ns: int) -> None:
        self._host.go(t0_ns, end_ns)

    def collect(self) -> tuple[Samples, float, int]:
        return self._host.collect(), self._cpu_s(), clock()

    def stop(self, end_ns: int) -> None:
        self._host.stop(end_ns)

    def finish(self, deadline_ns: int) -> tuple[Samples, int, str | None]:
        return self._host.finish(deadline_ns)


def _shift(samples: Samples, offset_ns: int) -> Samples:
    return Samples(samples.start_ns - offset_ns, samples.latency_ns, samples.outcome)


class RayHost:
    """Senders in a Ray actor on ``node``; its samples on the coordinator's clock."""

    def __init__(
        self,
        ray: ModuleType,
        actor_class: Any,
        node: Node,
        factory: Callable[[], Client],
        request: Any,
        plan: Plan,
        on_lost: Callable[[str], None],
    ) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._ray = ray
        self.node = node
        self.plan = plan
        #: Told the node's id when its actor is lost (the cluster checks that node).
        self._on_lost = on_lost
        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        self._actor = actor_class.options(
            num_cpus=0, scheduling_strategy=strategy, max_restarts=0
        ).remote(factory, request, plan)
        self.offset = Offset(0, 0, 0)
        #: Everything collected, already on the coordinator's clock (for the node's report).
        self.parts: list[Samples] = []
        #: (coordinator time, the actor's CPU seconds) at each collect.
        self.cpu_readings: list[tuple[int, float]] = []

    def wait_ready(self) -> None:
        """Wait for the actor's clients, then measure its node's clock offset."""
        placed_on = self._get(self._actor.ready.remote(), "start", START_TIMEOUT_S)
        if placed_on != self.node.node_id:
            raise SystemFailure(f"{self.node.name}: its load actor was placed on {placed_on}")
        self.offset = measure(lambda: self._get(self._actor.clocks.remote(), "clock", 10.0))

    def _get(self, ref: Any, what: str, timeout_s: float) -> Any:
        try:
            return ray_get(self._ray, ref, self.node.name, what, timeout_s, lost=LoadLost)
        except LoadLost:
            self._on_lost(self.node.node_id)
            raise

    def go(self, t0_ns: int, end_ns: int) -> None:
        self._actor.go.remote(self.offset.to_node(t0_ns), self.offset.to_node(end_ns))

    def collect(self) -> Samples:
        samples, cpu_s, node_ns = self._get(self._actor.collect.remote(), "collect", CALL_TIMEOUT_S)
        self.cpu_readings.append((node_ns - self.offset.offset_ns, cpu_s))
        return self._keep(samples)

    def _keep(self, samples: Samples) -> Samples:
        shifted = _shift(samples, self.offset.offset_ns)
        self.parts.append(shifted)
        return shifted

    def stop(self, end_ns: int) -> None:
        self._actor.stop.remote(self.offset.to_node(end_ns) if end_ns else 0)

    def finish(self, deadline_ns: int) -> tuple[Samples, int, str | None]:
        timeout_s = (deadline_ns - clock()) / 1e9 + CALL_TIMEOUT_S
        ref = self._actor.finish.remote(self.offset.to_node(deadline_ns))
        samples, calls, first_error = self._get(ref, "finish", timeout_s)
        return self._keep(samples), calls, first_error

    def pids(self) -> list[int]:
        return []  # on another machine: its CPU is read by the actor itself

    def close(self) -> None:
        """Kill the actor (and with its process, its clients' connections)."""
        self._ray.kill(self._actor, no_restart=True)

    def report(self, run: Run, window_s: float) -> dict[str, Any]:
        """This node's share of the run's measured windows, its CPU use and its clock."""
        mine = Samples.concat(self.parts).sent_between(*run.measured_bounds)
        cpu_pct = None
        if len(self.cpu_readings) >= 2:  # from the first window's end to the last's
            (t_a, cpu_a), (t_b, cpu_b) = self.cpu_readings[0], self.cpu_readings[-1]
            cpu_pct = 100 * (cpu_b - cpu_a) / ((t_b - t_a) / 1e9) if t_b > t_a else None
        return {
            "node": self.node.name,
            "node_id": self.node.node_id,
            "address": self.node.address,
            "senders": self.plan.senders,
            "sent": len(mine),
            "ok": mine.count(OK),
            "errors": mine.count(ERROR),
            "timeouts": mine.count(TIMEOUT),
            "client_cpu_pct": cpu_pct,
            "offset_ns": self.offset.offset_ns,
            "offset_uncertainty_ns": self.offset.uncertainty_ns,
            "wall_offset_ns": self.offset.wall_offset_ns,
            "offset_suspect": self.offset.suspect(window_s),
        }
