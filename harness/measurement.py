"""The data of a measurement, shared by the load generator, the systems and the statistics.

Data only (no threads, no clocks, no I/O): one request is a sample (start, latency,
outcome), a repeat of a load point is a :class:`Run` of samples with its window boundaries
and the server readings taken at them. Engines that bring their own load generator (e.g.
perf_analyzer) build these types; they never need the load generator itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Outcome codes of one request (an int8 per sample).
OK, ERROR, TIMEOUT, CANCELLED = 0, 1, 2, 3
#: Windows compared by the stability rule (and reported as the measurement).
STABLE_SET = 3


@dataclass(frozen=True)
class Samples:
    """One row per request: when it was (scheduled to be) sent, how long it took, its end.

    ``start_ns`` is on the shared monotonic clock (``time.perf_counter_ns``, system-wide on
    Linux, so samples from client processes line up); ``latency_ns`` runs from that start
    to the reply or the failure.
    """

    start_ns: np.ndarray
    latency_ns: np.ndarray
    outcome: np.ndarray

    @staticmethod
    def empty() -> Samples:
        return Samples(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8))

    @staticmethod
    def concat(parts: Sequence[Samples]) -> Samples:
        """Lossless merge: every sample of every part, nothing summarised away."""
        if not parts:
            return Samples.empty()
        return Samples(
            np.concatenate([p.start_ns for p in parts]),
            np.concatenate([p.latency_ns for p in parts]),
            np.concatenate([p.outcome for p in parts]),
        )

    def __len__(self) -> int:
        return int(self.start_ns.size)

    def sent_between(self, begin_ns: int, end_ns: int) -> Samples:
        keep = (self.start_ns >= begin_ns) & (self.start_ns < end_ns)
        return Samples(self.start_ns[keep], self.latency_ns[keep], self.outcome[keep])

    def ok_done_between(self, begin_ns: int, end_ns: int) -> int:
        done = self.start_ns + self.latency_ns
        return int(np.count_nonzero((self.outcome == OK) & (done >= begin_ns) & (done < end_ns)))

    def ok_latencies(self) -> np.ndarray:
        return self.latency_ns[self.outcome == OK]

    def count(self, outcome: int) -> int:
        return int(np.count_nonzero(self.outcome == outcome))


@dataclass(frozen=True)
class Timing:
    """How long to warm up, how long a window lasts and when to stop adding windows."""

    warmup_s: float
    window_s: float
    max_windows: int
    stability_pct: float


@dataclass(frozen=True)
class Probe:
    """Readings taken at a window boundary: CPU seconds used so far, server counters and
    the local GPUs' utilisation and memory."""

    t_ns: int
    client_cpu_s: float
    server_cpu_s: float | None
    stats: dict[str, Any] = field(default_factory=dict)
    #: CPU seconds the machine spent outside the harness's process tree (a running total;
    #: see :mod:`harness.interference`). None where not read.
    others_cpu_s: float | None = None
    #: Local GPUs through NVML (:func:`harness.gpu.sample`); None without one.
    gpu: dict[str, float] | None = None


@dataclass
class Run:
    """One repeat of one load point: every sample, and where its windows lie."""

    samples: Samples
    boundaries_ns: list[int]
    #: The last :data:`STABLE_SET` windows passed the stability rule (set by the controller).
    stable: bool
    calls: int = 0
    first_error: str | None = None
    probe_start: Probe | None = None
    probe_end: Probe | None = None
    #: What an external load generator reported itself (kept to cross-check ours).
    reported: dict[str, float] | None = None
    #: Server counters (formed batches) read when nothing was in flight: before the turn's
    #: first request and after its last reply, so their difference counts exactly the
    #: requests of the turn (warm-up included), never a request cut by a window edge.
    stats_before: dict[str, Any] | None = None
    stats_after: dict[str, Any] | None = None
    #: Load nodes of a cluster run (``--cluster``): each one's share, CPU use and clock.
    load_nodes: list[dict[str, Any]] | None = None

    @property
    def measured_bounds(self) -> tuple[int, int]:
        """The reported measurement: the last :data:`STABLE_SET` windows (or all, if fewer)."""
        return self.boundaries_ns[-STABLE_SET - 1 :][0], self.boundaries_ns[-1]

    @property
    def measured_s(self) -> float:
        begin, end = self.measured_bounds
        return (end - begin) / 1e9

    def measured(self) -> Samples:
        return self.samples.sent_between(*self.measured_bounds)

    def others_pct(self, cpus: int) -> float | None:
        """Share (%) of the machine's ``cpus`` that other processes used over the measured
        windows; None without the readings."""
        start, end = self.probe_start, self.probe_end
        if start is None or end is None or start.others_cpu_s is None or end.others_cpu_s is None:
            return None
        wall = (end.t_ns - start.t_ns) / 1e9
        return (
            max(0.0, 100 * (end.others_cpu_s - start.others_cpu_s) / (wall * cpus))
            if wall
            else None
        )

    @property
    def qps(self) -> float:
        begin, end = self.measured_bounds
        return self.samples.ok_done_between(begin, end) / self.measured_s if end > begin else 0.0
