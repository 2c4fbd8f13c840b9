"""One system's turn at one load point: its senders, its windows, its readings.

A turn is what a round is made of (see :mod:`harness.rounds`): the system's clients are
built (threads here, or client processes for systems reached over the network), warmed
up and measured over windows by :func:`harness.loadgen.drive`, with the client and
server CPU read at each window boundary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from engines.workloads import Workload
from harness import gpu
from harness.distributed.cluster import current as current_cluster
from harness.distributed.host import RayHost
from harness.distributed.server import NodeSystem
from harness.interference import others_cpu_s
from harness.loadgen import Host, Plan, ProcessHost, ThreadHost, all_ready, clock, drive, plans
from harness.measurement import STABLE_SET, Probe, Run, Timing
from harness.scenario import Load
from harness.system import Client, LoadGenerator, System, cpu_seconds


def timing_of(load: Load) -> Timing:
    """Exactly 3 windows of ``duration_s / 3``; with the optional stability rule, windows
    are added until the last 3 agree or ``max_windows`` is reached."""
    if load.stability_pct is None:
        return Timing(load.warmup_s, load.duration_s / STABLE_SET, STABLE_SET, math.inf)
    return Timing(load.warmup_s, load.duration_s / STABLE_SET, load.max_windows, load.stability_pct)


def make_probe(system: System, client_pids: Sequence[int]) -> Callable[[], Probe]:
    """Readings at each window boundary: client and server CPU used so far, local GPUs,
    and the CPU the rest of the machine used (to see a turn that other work disturbed)."""

    def probe() -> Probe:
        return Probe(
            t_ns=clock(),
            client_cpu_s=cpu_seconds(client_pids, with_children=False),
            server_cpu_s=system.server_cpu_seconds(),
            # A server on another node or at a URL may well run on this machine too,
            # outside our tree: then "others" would count the system under test.
            others_cpu_s=None if current_cluster() or system.remote else others_cpu_s(),
            gpu=gpu.sample(),
        )

    return probe


def senders_of(load: Load, point: float) -> int:
    """Concurrent senders: the clients (closed loop) or the open loop's sender pool."""
    return int(point) if load.mode == "closed" else load.max_outstanding


def server_nodes(system: System) -> frozenset[str]:
    """The cluster node its server runs on (load goes elsewhere), if placed on one."""
    node = system.node_id if isinstance(system, NodeSystem) else None
    return frozenset({node} if node else ())


def client_processes(system: System, load: Load, point: float) -> int:
    """Client processes the point gets: 1 (threads here) unless asked and possible; with a
    cluster (``--cluster``), ``client_processes`` on each of its load nodes."""
    cluster = current_cluster()
    if (load.client_processes == 1 and cluster is None) or system.client_factory() is None:
        return 1
    wanted = load.client_processes
    if cluster is not None:
        wanted = cluster.host_count(wanted, server_nodes(system))
    return len(plans(load.mode, senders_of(load, point), wanted, 1.0))


def threads_here(system: System, load: Load, point: float) -> bool:
    """Whether the point's senders are threads of the harness (not client processes, not
    actors on the load nodes of a cluster)."""
    if system.client_factory() is None:
        return True
    return current_cluster() is None and client_processes(system, load, point) == 1


def _hosts(system: System, workload: Workload, load: Load, point: float, seed: int) -> list[Host]:
    """Senders for one repeat: threads here, or (if the system allows) client processes or
    Ray actors on the load nodes of the cluster the run was given."""
    cluster = current_cluster()
    processes = client_processes(system, load, point)
    factory = None if threads_here(system, load, point) else system.client_factory()
    host_plans = plans(
        load.mode,
        senders_of(load, point),
        processes,
        load.request_timeout_s,
        rate=point if load.mode == "open" else 0.0,
        arrival=load.arrival,
        seed=seed,
    )
    if factory is None:
        return [thread_host(system, workload, host_plans[0])]
    # Each client process (or load node) sends one of the workload's requests.
    requests = _in_turn(workload.requests(), len(host_plans))
    if cluster is not None:
        return list(cluster.hosts(factory, requests, host_plans, server_nodes(system)))
    return all_ready(
        [
            ProcessHost(factory, request, plan)
            for request, plan in zip(requests, host_plans, strict=True)
        ]
    )


def thread_host(system: System, workload: Workload, plan: Plan, gated: bool = False) -> ThreadHost:
    """Senders as threads of the harness, each with its own client of ``system``."""
    clients: list[Client] = []
    try:
        while len(clients) < plan.senders:
            clients.append(system.client())
    except BaseException:
        for client in clients:
            client.close()
        raise
    return ThreadHost(clients, _in_turn(workload.requests(), len(clients)), plan, gated)


def _in_turn(requests: list[Any], count: int) -> list[Any]:
    """``count`` senders' requests: the workload's requests (an input-data file's steps)
    taken in turn."""
    return [requests[index % len(requests)] for index in range(count)]


def measure_turn(
    system: System,
    own: LoadGenerator | None,
    workload: Workload,
    load: Load,
    point: float,
    seed: int,
    on_tick: Callable[[float], None] | None = None,
) -> Run:
    """One system's turn at one point: fresh clients, warm-up, measured windows.

    The server's counters are read when nothing is in flight (before the clients start,
    after the last reply), so the formed-batch histogram counts exactly this turn's
    requests.
    """
    timing = timing_of(load)
    before = system.stats()
    if own is not None:
        run = own.run(point, timing, make_probe(system, []))
    else:
        hosts = _hosts(system, workload, load, point, seed)
        try:
            pids = [os.getpid()] + [pid for host in hosts for pid in host.pids()]
            probe = make_probe(system, pids)
            run = drive(hosts, timing, load.request_timeout_s, probe, on_tick)
            nodes = [h.report(run, timing.window_s) for h in hosts if isinstance(h, RayHost)]
            run.load_nodes = nodes or None
        finally:
            for host in hosts:
                host.close()
    run.stats_before, run.stats_after = before, system.stats()
    return run
