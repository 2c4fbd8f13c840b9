"""Servers on cluster nodes: a system started by a Ray actor on a node with given resources.

A system with ``node: {resources: {...}}`` in the scenario (or every system that serves,
with ``bench run --cluster ... --server-resources GPU=1``) is a :class:`NodeSystem`: its
``start`` creates a :class:`ServerNode` actor pinned to the first alive node whose totals
include those resources. The resources choose the node; they are not reserved: the systems
of a scenario are all started before they are measured in turns, so they share that node as
they share one machine without a cluster (holding ``GPU: 1`` per system would leave the
second one waiting forever on a one-GPU node), and their servers see the node's devices.
There the actor builds the real system with the node's cluster address as its ``host`` (the
address its server binds: never ``0.0.0.0``) and starts it. Every call of the System
contract is forwarded to the actor; the clients built from its picklable factory connect to
that address, from load nodes other than the server's (:func:`harness.turn.server_nodes`).

The server is a child of the actor's process, a :class:`~harness.process.ServerProcess`
with its own process group and watchdog, so whatever ends the actor ends the server:
:meth:`NodeSystem.stop`, a failed start, the driver's death (Ray kills the actors a driver
owns, and the watchdog the server of a killed actor) or the loss of its node.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.distributed.cluster import current, parse_resources
from harness.distributed.host import START_TIMEOUT_S, ray_get
from harness.errors import InputError, SystemFailure
from harness.scenario import NodePlacement, Scenario, SystemSpec
from harness.system import LOOPBACK, Client, LoadGenerator, System, system_class

#: Calls that only read the server (stats, liveness) answer within this.
CALL_TIMEOUT_S = 30.0


class ServerNode:
    """The body of a server actor: the real system, built and run on the actor's node."""

    def __init__(self, spec: SystemSpec, scenario: Scenario) -> None:
        import ray

        self._system = system_class(spec.name)(spec, scenario, ray.util.get_node_ip_address())

    def start(self) -> dict[str, Any]:
        """Start the server; where it runs: the node's id, the bound address, this PID."""
        import ray

        self._system.start()
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "address": self._system.host,
            "actor_pid": os.getpid(),
        }

    def call(self, method: str, *args: Any) -> Any:
        """The real system's ``method(*args)``."""
        return getattr(self._system, method)(*args)


def _here(spec: SystemSpec, scenario: Scenario) -> System:
    """System ``spec`` as it would run on this machine (not started)."""
    return system_class(spec.name)(spec.model_copy(update={"node": None}), scenario)


def placement_problem(system: System) -> str | None:
    """Why ``system``'s server cannot be placed on a node (None: it can)."""
    if not system.serves:
        return f"{system.spec.name} runs in the harness: it has no server to place on a node"
    if system.remote:
        return "a deployment given by its address runs where it runs: nothing to start"
    return None


def place_servers(
    path: Path, scenario: Scenario, server_resources: str | None, cluster: str | None
) -> Scenario:
    """``scenario`` with ``--server-resources`` given to every system that starts a server
    (in-process and remote ones stay as they are), its ``node:`` entries checked."""
    if server_resources is not None:
        if cluster is None:
            raise InputError("--server-resources: only with --cluster (nodes of which cluster?)")
        node = NodePlacement(resources=parse_resources(server_resources, "--server-resources"))
        systems = [
            spec
            if placement_problem(_here(spec, scenario))
            else spec.model_copy(update={"node": node})
            for spec in scenario.systems
        ]
        scenario = scenario.model_copy(update={"systems": systems})
    for index, spec in enumerate(scenario.systems):
        if spec.node is None:
            continue
        where = f"{path}: systems.{index}.node"
        if cluster is None:
            raise InputError(f"{where}: a server on a cluster node needs --cluster")
        if problem := placement_problem(_here(spec, scenario)):
            raise InputError(f"{where}: {problem}")
    return scenario


class NodeSystem(System):
    """A serving system whose server runs on a cluster node, driven through its actor."""

    def __init__(self, spec: SystemSpec, scenario: Scenario) -> None:
        assert spec.node is not None
        where = f"{spec.column}: node"
        # Not started: answers what needs no server (options, batch sizes out of stats...).
        self._local = _here(spec, scenario)
        if problem := placement_problem(self._local):
            raise InputError(f"{where}: {problem}")
        session = current()
        if session is None:
            raise InputError(f"{where}: a server on a cluster node needs --cluster")
        if not session.offering(spec.node.resources):
            raise InputError(f"{where}: no alive node of the cluster offers {self._wanted(spec)}")
        self.spec = spec
        self.scenario = scenario
        self.options = self._local.options
        self.host = LOOPBACK  # until started: then the node's address
        self._session = session
        self._ray = session.ray
        self._actor_class = session.ray.remote(ServerNode)
        self._actor: Any = None
        self._factory: Callable[[], Client] | None = None
        #: Where it runs once started (node id, address, the actor's PID), for the record.
        self.placement: dict[str, Any] | None = None

    @property
    def computes(self) -> bool:  # type: ignore[override]
        return self._local.computes

    @property
    def reply_known(self) -> bool:
        return self._local.reply_known

    @property
    def node_id(self) -> str | None:
        return self.placement["node_id"] if self.placement else None

    def _who(self) -> str:
        node = f"node {self.node_id[:8]}" if self.node_id else "a cluster node"
        return f"{self.spec.column} (server on {node})"

    def _call(self, method: str, *args: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        if self._actor is None:
            raise SystemFailure(f"{self.spec.column}: not started")
        ref = self._actor.call.remote(method, *args)
        return ray_get(self._ray, ref, self._who(), method, timeout_s)

    @staticmethod
    def _wanted(spec: SystemSpec) -> str:
        resources = spec.node.resources if spec.node else {}
        return ",".join(f"{k}={v:g}" for k, v in resources.items())

    def start(self) -> None:
        """An actor on the first alive node offering the resources (every system of a run
        asking for the same ones lands on the same node)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = self._session.offering(self.spec.node.resources if self.spec.node else {})
        if not nodes:
            wanted = self._wanted(self.spec)
            raise SystemFailure(f"{self.spec.column}: no alive node offers {wanted} any more")
        strategy = NodeAffinitySchedulingStrategy(nodes[0], soft=False)
        self._actor = self._actor_class.options(
            num_cpus=0, scheduling_strategy=strategy, max_restarts=0
        ).remote(self.spec.model_copy(update={"node": None}), self.scenario)
        try:
            ref = self._actor.start.remote()
            self.placement = ray_get(self._ray, ref, self._who(), "start", START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.host = self.placement["address"]

    def ready(self, timeout: float) -> None:
        self._call("ready", timeout, timeout_s=timeout + CALL_TIMEOUT_S)
        self._factory = self._call("client_factory")

    def client(self) -> Client:
        return self.client_factory()()

    def client_factory(self) -> Callable[[], Client]:
        if self._factory is None:
            raise SystemFailure(f"{self.spec.column}: not ready")
        return self._factory

    def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = self._call("stats") if self._actor is not None else {}
        if self.placement is not None:
            found["server_node"] = {**self.placement, "resources": self.spec.node.resources}  # type: ignore[union-attr]
        return found

    def server_cpu_seconds(self) -> float | None:
        """Read on the node by the actor; None once the actor is gone."""
        if self._actor is None:
            return None
        try:
            found: float | None = self._call("server_cpu_seconds")
        except SystemFailure:
            return None
        return found

    def batch_sizes(self, stats: dict[str, Any]) -> dict[int, int]:
        return self._local.batch_sizes(stats)

    def server_times(self, stats: dict[str, Any]) -> dict[str, float] | None:
        return self._local.server_times(stats)

    def endpoints(self) -> dict[str, str]:
        found: dict[str, str] = self._call("endpoints")
        return found

    def load_generator(self) -> LoadGenerator | None:
        found: LoadGenerator | None = self._call("load_generator")
        return found

    def check_alive(self) -> None:
        self._call("check_alive")

    def stop(self) -> None:
        """Stop the server the normal way (its leftovers removed), then end the actor."""
        actor, self._actor, self._factory = self._actor, None, None
        if actor is None:
            return
        try:
            ray_get(self._ray, actor.call.remote("stop"), self._who(), "stop", CALL_TIMEOUT_S)
        except SystemFailure:
            pass  # gone already, or stuck: killing the actor ends its server (the watchdog)
        finally:
            self._ray.kill(actor, no_restart=True)
