"""Where the load generator and the servers run: CPU placement of a measurement.

Measured on the 2-vCPU virtual machines this project runs on: a client and a server left
to the OS scheduler switch between two regimes, both on one vCPU (a request is a context
switch) or one on each (every request wakes the other vCPU, which a hypervisor without
guest halt-polling does through a VM exit). The regime flips within a second: one turn of
1 client on Thrift read 2,900 and 11,400 QPS in two consecutive 0.4 s windows. Pinned, each
regime is steady, and sharing one vCPU was the steadiest. Interleaved turns on a loaded
machine, round-to-round spread of QPS (CV) for thrift, pipe+thrift and triton at 1 and 10
clients: 7-16 % shared, 13-38 % unpinned, 17-30 % on disjoint vCPUs. On a quiet machine
(``benchmarks/noise.py``): median 9.1 % shared against 10.3 % unpinned, worst 13 % against
32 % (thrift and pipe+thrift at 10 clients), paired-ratio half-width 24 % against 34 %.
The rest of that spread is the host's: a fixed loop pinned to one vCPU varied by 14-23 %
in 0.25 s windows at the same time. Sharing also leaves the other vCPU to everything else
the machine runs.

So the placement is part of what is measured, chosen per scenario (``load.affinity``)
and recorded in the result's environment:

- ``shared``: the harness, its clients and every server on one CPU (the last one allowed):
  throughput is what one core does for client and server together.
- ``split``: servers on the upper half of the allowed CPUs, the harness and its clients on
  the lower half (disjoint, as on a real deployment with a separate load generator).
- ``none``: the OS decides (for scenarios about using every core, like threads against
  processes under the GIL).
- ``auto`` (default): ``split`` with 4 CPUs or more, ``shared`` with 2 or 3, else ``none``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import psutil

Affinity = Literal["auto", "shared", "split", "none"]


@dataclass(frozen=True)
class Placement:
    """The CPUs the harness (with its client threads and processes) and servers run on."""

    mode: Literal["shared", "split", "none"]
    harness_cpus: frozenset[int]
    server_cpus: frozenset[int]

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "harness_cpus": sorted(self.harness_cpus),
            "server_cpus": sorted(self.server_cpus),
        }

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Pin this process (every thread) for the duration; restore its CPUs after.

        Servers started meanwhile inherit the harness's CPUs; :meth:`place_servers` moves
        them where they belong."""
        original = os.sched_getaffinity(0)
        if self.mode != "none":
            pin_threads(os.getpid(), self.harness_cpus)
        try:
            yield
        finally:
            if self.mode != "none":
                pin_threads(os.getpid(), original)

    def place_servers(self, pids: Iterable[int]) -> None:
        """Pin each server process, its threads and its children to the server CPUs."""
        if self.mode == "none":
            return
        for pid in pids:
            pin_tree(pid, self.server_cpus)


def plan(affinity: Affinity, available: Sequence[int] | None = None) -> Placement:
    """The placement ``affinity`` asks for on the CPUs this process may use."""
    cpus = sorted(available if available is not None else os.sched_getaffinity(0))
    everything = frozenset(cpus)
    if affinity == "auto":
        affinity = "split" if len(cpus) >= 4 else "shared" if len(cpus) >= 2 else "none"
    if affinity == "shared" and cpus:
        one = frozenset(cpus[-1:])
        return Placement("shared", one, one)
    if affinity == "split" and len(cpus) >= 2:
        half = len(cpus) // 2
        return Placement("split", frozenset(cpus[:half]), frozenset(cpus[half:]))
    return Placement("none", everything, everything)


def pin_threads(pid: int, cpus: Iterable[int]) -> None:
    """Set the CPUs of every thread of ``pid`` (Linux pins threads one by one; threads
    created later inherit their creator's CPUs). Threads that exit meanwhile are skipped."""
    wanted = set(cpus)
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, wanted)


def pin_tree(pid: int, cpus: Iterable[int]) -> None:
    """Pin a process, all its threads and all its descendants."""
    wanted = set(cpus)
    try:
        family = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return
    for member in family:
        pin_threads(member, wanted)
