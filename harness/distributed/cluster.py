"""The Ray cluster of a ``bench run --cluster``: connected (or started) once, always let go.

``--cluster local:N`` starts a throwaway cluster on this machine with Ray's
``cluster_utils.Cluster``: a head node without CPUs (the coordinator's: the harness and the
servers under test run there) and N simulated load nodes on this machine, each with one CPU
and the custom resource ``local_node_<i>`` (so ``--resources local_node_1=1`` picks one).
Its processes, sockets and logs live in a temporary folder that goes with it. ``--cluster
ADDRESS`` connects to a running cluster (``ray start --head`` ...), whose nodes run the same
pipebench checkout.

While a cluster is open, :func:`current` returns it and the load generator places client
hosts on its load nodes (every alive node with CPUs but the coordinator's and, for a system
whose server runs on a node, that node), one :class:`~harness.distributed.host.RayHost` per
plan, round-robin. A node whose load actor was lost is probed before the next placement and
left out if it is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from harness.distributed import require_ray
from harness.distributed.host import LoadNode, Node, RayHost
from harness.errors import BenchError, InputError
from harness.loadgen import Plan, all_ready
from harness.process import guarded_dir
from harness.system import Client
from harness.watchdog import end_users

#: Simulated load nodes a local cluster may have (each is a raylet: ~100 MB, some CPU).
MAX_LOCAL_NODES = 8
#: The smallest object store Ray accepts; samples are a few MB per window at most.
OBJECT_STORE_BYTES = 80 * 2**20
#: A killed node is noticed in about two seconds instead of Ray's default thirty.
LOCAL_HEALTH_CHECK = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
#: How long a node whose load actor was lost gets to show it lives (Ray's default health
#: checks declare a dead node after 30 s; a local cluster's after about 2).
SETTLE_TIMEOUT_S = 45.0
#: How long a local cluster's processes get to exit after its shutdown before SIGKILL (an
#: orphaned worker notices its raylet is gone only at its next check).
PROCESS_EXIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ClusterSpec:
    """``local:N`` (``local_nodes`` = N) or the address of a running cluster."""

    text: str
    address: str | None
    local_nodes: int = 0

    @classmethod
    def parse(cls, text: str) -> ClusterSpec:
        text = text.strip()
        if text.startswith("local:"):
            count = text.removeprefix("local:")
            if not count.isdigit() or not 1 <= int(count) <= MAX_LOCAL_NODES:
                raise InputError(
                    f"--cluster: {text!r}: local:N needs N from 1 to {MAX_LOCAL_NODES}"
                )
            return cls(text, None, int(count))
        if not text or any(c.isspace() for c in text):
            raise InputError(f"--cluster: {text!r}: give local:N or a Ray address (host:port)")
        return cls(text, text)


def parse_resources(text: str, option: str = "--resources") -> dict[str, float]:
    """``GPU=1,local_node_1=1`` -> ``{"GPU": 1.0, "local_node_1": 1.0}``."""
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, amount = item.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0:
            raise InputError(f"{option}: {item!r}: give NAME=AMOUNT, e.g. GPU=1")
        found[name.strip()] = value
    if not found:
        raise InputError(f"{option}: give NAME=AMOUNT pairs, e.g. GPU=1")
    return found


class Session:
    """An open cluster: its load nodes, and load hosts placed on them."""

    def __init__(self, ray: ModuleType, spec: ClusterSpec) -> None:
        self.ray = ray
        self.spec = spec
        self._actor_class = ray.remote(LoadNode)
        self._probe = ray.remote(_node_id)
        #: Nodes whose load actor was lost (checked before the next placement) ...
        self._suspect: set[str] = set()
        #: ... and those found gone: never used again, even while Ray still lists them.
        self._lost: set[str] = set()

    def _settle(self) -> None:
        """Whether each suspect node lives: a task placed there runs (only its actor was
        lost), or fails or waits in vain (the node is gone: Ray may list it as alive
        until its health checks fail, and an actor sent there would wait as long)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node_id in sorted(self._suspect):
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            ref = self._probe.options(num_cpus=0, scheduling_strategy=strategy).remote()
            try:
                self.ray.get(ref, timeout=SETTLE_TIMEOUT_S)
            except self.ray.exceptions.RayError:
                self._lost.add(node_id)
                self.ray.cancel(ref, force=True)
        self._suspect.clear()

    def alive_nodes(self) -> list[dict[str, Any]]:
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def offering(self, resources: dict[str, float]) -> list[str]:
        """The alive nodes (ids, in a stable order) whose totals include ``resources``:
        asking Ray for resources no node offers would wait forever."""
        found = sorted(
            (node["NodeManagerAddress"], node["NodeID"])
            for node in self.alive_nodes()
            if all(node["Resources"].get(k, 0) >= v for k, v in resources.items())
        )
        return [node_id for _, node_id in found]

    def load_nodes(self, avoid: frozenset[str] = frozenset()) -> list[Node]:
        """Alive nodes with CPUs, except the coordinator's and those in ``avoid`` (the
        servers under test run there), in a stable order."""
        self._settle()
        avoid = avoid | self._lost | {self.ray.get_runtime_context().get_node_id()}
        found = sorted(
            (node for node in self.alive_nodes() if node["NodeID"] not in avoid),
            key=lambda node: (node["NodeManagerAddress"], node["NodeName"], node["NodeID"]),
        )
        return [
            Node(node["NodeID"], node["NodeManagerAddress"], index)
            for index, node in enumerate(n for n in found if n["Resources"].get("CPU", 0) > 0)
        ]

    def host_count(self, processes: int, avoid: frozenset[str] = frozenset()) -> int:
        """Load hosts a point gets: ``client_processes`` on each load node."""
        return processes * max(1, len(self.load_nodes(avoid)))

    def hosts(
        self,
        factory: Callable[[], Client],
        requests: Sequence[Any],
        plans: Sequence[Plan],
        avoid: frozenset[str] = frozenset(),
    ) -> list[RayHost]:
        """One actor per plan (sending its request of ``requests``), round-robin over the
        load nodes (but those in ``avoid``), each ready and its clock offset measured; on
        any failure the ones already created are killed."""
        nodes = self.load_nodes(avoid)
        if not nodes:
            besides = " and the servers under test's" if avoid else ""
            raise BenchError(
                f"--cluster {self.spec.text}: no load node (every alive node with CPUs "
                f"other than the coordinator's{besides} runs load; this cluster has none)"
            )
        hosts: list[RayHost] = []
        ray, actor_class, on_lost = self.ray, self._actor_class, self._suspect.add
        try:
            for index, (plan, request) in enumerate(zip(plans, requests, strict=True)):
                node = nodes[index % len(nodes)]
                hosts.append(RayHost(ray, actor_class, node, factory, request, plan, on_lost))
        except BaseException:
            for host in hosts:
                host.close()
            raise
        return all_ready(hosts)


def _node_id() -> str:
    """Where a task ran (the probe of a node's life)."""
    import ray

    return ray.get_runtime_context().get_node_id()


_current: Session | None = None


def current() -> Session | None:
    """The cluster of the run in progress, if it asked for one."""
    return _current


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def local_cluster(ray: ModuleType, nodes: int) -> Iterator[str]:
    """A Ray cluster of ``nodes`` simulated load nodes on 127.0.0.1; its address.

    Everything of the cluster lives in one guarded folder: Ray's sessions, sockets and logs
    (``RAY_TMPDIR``) and the temp folder of its processes (``TMPDIR``, which they inherit):
    the harness in a Ray worker makes its own temp folder there, and Ray kills its workers
    and their children (that folder's watchdog too) when they end, so no one else would
    remove it. The folder goes once every process of the cluster is gone, and again when
    the driver exits (Ray's code in the driver writes its session folder there after the
    cluster stopped)."""
    from ray.cluster_utils import Cluster

    common: dict[str, Any] = {
        "object_store_memory": OBJECT_STORE_BYTES,
        "include_dashboard": False,
    }
    cluster = None
    # Ray's processes share the driver's fate (the kernel's parent-death signal); its
    # folder is removed by a watchdog if the driver is killed, and again when the driver
    # exits: Ray's code in the driver makes its session folder anew after the shutdown.
    with guarded_dir("ray", linger=True) as folder:
        (folder / "ray").mkdir()  # where Ray writes the cluster's address
        (folder / "tmp").mkdir()
        try:
            # Only while Ray's processes start (they inherit it): the driver's own servers
            # keep its TMPDIR, and only Ray's processes name the folder.
            with _environment({"RAY_TMPDIR": str(folder), "TMPDIR": str(folder / "tmp")}):
                head = {**common, "num_cpus": 0, "_system_config": LOCAL_HEALTH_CHECK}
                cluster = Cluster(initialize_head=True, head_node_args=head)
                for index in range(nodes):
                    cluster.add_node(**common, num_cpus=1, resources={f"local_node_{index}": 1})
            yield cluster.address
        finally:
            if cluster is not None:
                cluster.shutdown()
            end_users([str(folder)], PROCESS_EXIT_TIMEOUT_S)


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """Give SIGTERM back to whoever handled it before the block. Ray takes it in the
    driver: ``ray.init`` makes it ``sys.exit(15)``, and a local cluster's head node (started
    in this process) kills its processes and calls ``sys.exit(1)``. So a ``bench run
    --cluster`` sent SIGTERM exited 15 or 1 from wherever it was, without saving its partial
    results or saying it was interrupted; the CLI's own handler does both and exits 130, as
    on Ctrl-C, and the cluster is stopped as the ``with`` block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread handles signals; Ray leaves them alone there too
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if handler is not None:  # None: set outside Python, nothing to give back
            signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def open_cluster(text: str) -> Iterator[Session]:
    """Connect to (or start) the cluster ``text`` names, for the ``with`` block; load hosts
    go to its nodes meanwhile. Ray is shut down (and a local cluster stopped) after."""
    global _current
    spec = ClusterSpec.parse(text)
    ray = require_ray()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environment({"RAY_USAGE_STATS_ENABLED": "0"}))
        with _sigterm_kept():
            address = spec.address
            if address is None:
                address = stack.enter_context(local_cluster(ray, spec.local_nodes))
            try:
                ray.init(address=address, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise BenchError(f"--cluster {spec.text}: cannot connect: {first}") from None
        stack.callback(ray.shutdown)
        _current = Session(ray, spec)
        try:
            yield _current
        finally:
            _current = None
