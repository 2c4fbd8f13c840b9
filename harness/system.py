"""The one interface every system implements, and the registry that names them.

The runner drives any system through the same five steps::

    system = create_system(spec, scenario)
    system.start()            # launch servers / build the engine (returns quickly), or
                              # raise SystemUnavailable: it cannot run on this machine
    system.ready(timeout)     # block until it answers; separate so start-up is a figure
    client = system.client()  # once per load worker: its own connection, its own input
    system.stats()            # server-side counters (formed batch sizes, ...), may be {}
    system.check_alive()      # after each point: did the server survive it?
    system.stop()             # idempotent, safe after a failed start

Optional hooks, generic so the runner stays system-agnostic: ``client_factory`` (clients
built in client processes), ``server_pids`` (server CPU use), ``batch_sizes`` (the formed
batch histogram out of ``stats``), ``server_times`` (the server's own queue and compute
time counters out of ``stats``), ``load_generator`` (a load generator of its own),
``endpoints`` (where ``bench serve`` tells other tools to connect) and ``remote`` (a
deployment the harness reaches but neither starts nor stops).

Systems that launch a server (``serves``) bind it to ``host``: loopback unless the run
places the server on a cluster node (a scenario's ``node:`` or ``--server-resources``),
where :mod:`harness.distributed.server` builds the system on that node with the node's
cluster address. Never ``0.0.0.0``: a benchmark server is not for everyone on the network.

Adding a system is one module with a :class:`System` subclass plus one line in
:data:`REGISTRY`; the runner knows nothing system-specific.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import psutil
from pydantic import BaseModel, ConfigDict

from harness.errors import BenchError, InputError

#: Where servers listen unless placed on a cluster node.
LOOPBACK = "127.0.0.1"

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from engines.workloads.tensors import TensorSpec
    from harness.measurement import Probe, Run, Timing
    from harness.scenario import Scenario, SystemSpec

#: name -> "module:Class"
REGISTRY: dict[str, str] = {
    "pipe": "engines.pipe.system:PipeSystem",
    "pipe+thrift": "engines.thrift.system:PipeThriftSystem",
    "thrift": "engines.thrift.system:ThriftSystem",
    "triton": "engines.triton.system:TritonSystem",
    "triton-rpc": "engines.triton.system:TritonRpcSystem",
    "torchpipe": "engines.torchpipe.system:TorchpipeSystem",
    "torchpipe+thrift": "engines.thrift.system:TorchpipeThriftSystem",
    "null": "engines.null:NullSystem",
}


class SystemUnavailable(BenchError):
    """The system cannot run on this machine for a reason that is not a failure: an optional
    wheel is not installed, the workload's runtime needs a GPU there is none of.

    :meth:`System.start` raises it before starting anything; the runner then records the
    system's points as skipped with ``str(exc)`` as the reason (one line, no column name),
    measures the others, and a run whose only gaps are skips still succeeds.
    """


class Client(Protocol):
    """One load worker's handle on a system. Used by one thread only."""

    def call(self, request: np.ndarray) -> np.ndarray:
        """Send one request, block until its reply; raise on any failure."""
        ...

    def close(self) -> None: ...


class LoadGenerator(Protocol):
    """A load generator a system brings instead of the harness's own (e.g. perf_analyzer)."""

    def run(self, point: float, timing: Timing, probe: Callable[[], Probe] | None) -> Run:
        """Measure one repeat of ``point`` (clients or rate, per the scenario's mode)."""
        ...


class NoOptions(BaseModel):
    """A system's ``options`` block; subclasses of :class:`System` widen it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class System(ABC):
    """A serving stack under test, configured by the scenario and its own ``Options``."""

    Options: ClassVar[type[BaseModel]] = NoOptions
    #: False for the pure-RPC systems: they reply with the workload's prepared reply.
    computes: ClassVar[bool] = True
    #: True when its clients and servers carry named multi-tensor requests and replies
    #: (``dict[str, ndarray]``, the ``onnx`` workload) end to end.
    named_tensors: ClassVar[bool] = False
    #: True when a remote deployment of it declares its model's tensors
    #: (:meth:`declared_tensors`), so it can serve a model the harness does not have.
    declares_tensors: ClassVar[bool] = False
    #: True for systems that launch a server reached over the network (bound to ``host``),
    #: the ones a run may place on a cluster node; in-process systems live in the harness.
    serves: ClassVar[bool] = False

    def __init__(self, spec: SystemSpec, scenario: Scenario, host: str = LOOPBACK) -> None:
        if host in ("", "0.0.0.0", "::"):
            raise InputError(f"{spec.column}: host {host!r}: bind a node's own address")
        self.spec = spec
        self.scenario = scenario
        self.options = self.Options.model_validate(spec.options)
        #: The address its server binds and its clients connect to.
        self.host = host

    @property
    def max_clients(self) -> int:
        """The most clients any point of the scenario will open at once."""
        return self.scenario.load.max_concurrency

    @abstractmethod
    def start(self) -> None:
        """Start the system; raise :class:`SystemUnavailable` (before starting anything)
        when it cannot run here for a reason that is not a failure."""

    @abstractmethod
    def ready(self, timeout: float) -> None:
        """Return once the system answers; raise :class:`SystemFailure` after ``timeout``."""

    @abstractmethod
    def client(self) -> Client: ...

    def stats(self) -> dict[str, Any]:
        return {}

    def client_factory(self) -> Callable[[], Client] | None:
        """A picklable callable that builds a client in another process, or ``None``.

        Systems reached over the network return one so that ``load.client_processes`` can
        spread their clients over several processes (one GIL each); in-process systems
        keep ``None`` and are driven by threads of the harness's own process.
        """
        return None

    def server_pids(self) -> list[int]:
        """Server processes whose CPU use is reported (their children are included)."""
        return []

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds its servers (and their children) have used so far; None without a
        server process of its own. Read where the servers run (a cluster node's actor)."""
        pids = self.server_pids()
        return cpu_seconds(pids, with_children=True) if pids else None

    def batch_sizes(self, stats: dict[str, Any]) -> dict[int, int]:
        """Formed batch size -> batches executed so far, read out of :meth:`stats`."""
        return {int(size): int(count) for size, count in stats.get("batch_sizes", {}).items()}

    def server_times(self, stats: dict[str, Any]) -> dict[str, float] | None:
        """The server's cumulative time counters out of :meth:`stats`, or ``None``.

        Keys: ``requests`` (requests counted so far), ``queue_us`` and ``compute_us``
        (microseconds summed over those requests: each request adds its wait before
        execution and its batch's execution time), optionally more detail
        (``compute_input_us``...). One name for the same thing across systems; the
        record holds their per-request difference over a point's turns.
        """
        return None

    @property
    def reply_known(self) -> bool:
        """False when the system runs code of the user's (their own backend): the harness
        cannot compute its reply, so the equivalence check only sees that it answers."""
        return True

    @property
    def remote(self) -> bool:
        """True for a deployment the harness only reaches: it starts and stops nothing."""
        return False

    def declared_tensors(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        """The inputs and outputs the deployment declares (read once it is ready), or None."""
        return None

    def endpoints(self) -> dict[str, str]:
        """Addresses other tools connect to (``bench serve`` prints them); {} in-process."""
        return {}

    def load_generator(self) -> LoadGenerator | None:
        """A load generator of the system's own to use instead of the harness's clients."""
        return None

    def check_alive(self) -> None:  # noqa: B027 - in-process systems cannot die apart
        """Raise :class:`SystemFailure` if the system died (e.g. its server exited)."""

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: name -> (the pipebench extra that installs what it needs, the modules it imports).
#: The core (pipe, null) needs none; ``scripts/bootstrap.sh`` installs every extra.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pipe+thrift": ("thrift", ("thrift",)),
    "thrift": ("thrift", ("thrift",)),
    "triton": ("triton", ("tritonclient", "pytriton")),
    "triton-rpc": ("triton", ("tritonclient", "pytriton")),
    "torchpipe": ("torchpipe", ("omniback",)),
    "torchpipe+thrift": ("thrift,torchpipe", ("thrift", "omniback")),
}


def missing_extra(name: str) -> str | None:
    """Why system ``name`` cannot be used here (its extra is not installed), or None."""
    extra, modules = EXTRAS.get(name, ("", ()))
    absent = [module for module in modules if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    return (
        f"system {name!r} needs the {extra!r} extra (missing: {', '.join(absent)}): "
        f"pip install 'pipebench[{extra}]'"
    )


def system_class(name: str) -> type[System]:
    """The class of system ``name``; a missing extra is bad input, not an ImportError."""
    problem = missing_extra(name)
    if problem:
        raise InputError(problem)
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def cpu_seconds(pids: Sequence[int], with_children: bool) -> float:
    """CPU seconds (user + system) used so far by ``pids`` (and their descendants)."""
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


def create_system(spec: SystemSpec, scenario: Scenario) -> System:
    """System ``spec`` of ``scenario``; with ``spec.node``, its server on a cluster node."""
    if spec.node is not None:
        from harness.distributed.server import NodeSystem

        return NodeSystem(spec, scenario)
    return system_class(spec.name)(spec, scenario)
