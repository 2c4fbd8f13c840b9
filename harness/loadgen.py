"""Closed-loop load: N client threads, each send -> wait -> repeat.

Each worker owns its client and its prepared request. Latency is timed around the call
with ``perf_counter_ns`` and appended to a per-thread list (no lock on the hot path).
The run has a warm-up, whose requests are sent but not recorded, then a measurement
window; a request counts in the window it was *sent* in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.system import Client


@dataclass
class WorkerTally:
    latencies_ns: list[int] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    first_error: str | None = None


@dataclass(frozen=True)
class LoadResult:
    """What one load point produced: raw latencies and the request accounting."""

    clients: int
    duration_s: float
    latencies_ns: np.ndarray
    sent: int
    ok: int
    errors: int
    first_error: str | None

    def __post_init__(self) -> None:
        assert self.sent == self.ok + self.errors, "a request was lost from the accounting"


def _worker(
    client: Client,
    request: np.ndarray,
    start: threading.Barrier,
    abort: threading.Event,
    window: list[int],
    tally: WorkerTally,
) -> None:
    latencies = tally.latencies_ns
    clock, call = time.perf_counter_ns, client.call
    try:
        start.wait()
    except threading.BrokenBarrierError:
        return
    measure_from, end = window
    while not abort.is_set():
        sent_at = clock()
        if sent_at >= end:
            break
        try:
            call(request)
        except Exception as exc:
            if sent_at >= measure_from:
                tally.sent += 1
                tally.errors += 1
                tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
            continue
        if sent_at >= measure_from:
            tally.sent += 1
            latencies.append(clock() - sent_at)


def run_closed_loop(
    clients: Sequence[Client],
    requests: Sequence[np.ndarray],
    warmup_s: float,
    duration_s: float,
    on_tick: Callable[[float], None] | None = None,
) -> LoadResult:
    """Drive ``clients`` (one thread each) for ``warmup_s`` + ``duration_s`` seconds."""
    abort = threading.Event()
    start = threading.Barrier(len(clients) + 1)
    tallies = [WorkerTally() for _ in clients]
    window = [0, 0]
    threads = [
        threading.Thread(
            target=_worker,
            args=(client, request, start, abort, window, tally),
            name=f"load-{index}",
            daemon=True,
        )
        for index, (client, request, tally) in enumerate(
            zip(clients, requests, tallies, strict=True)
        )
    ]
    for thread in threads:
        thread.start()
    began = time.perf_counter_ns()
    window[0] = began + int(warmup_s * 1e9)
    window[1] = window[0] + int(duration_s * 1e9)
    try:
        start.wait()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
                if on_tick:
                    on_tick((time.perf_counter_ns() - began) / 1e9)
    finally:
        abort.set()
        start.abort()
    latencies = np.fromiter((x for tally in tallies for x in tally.latencies_ns), dtype=np.int64)
    errors = sum(tally.errors for tally in tallies)
    return LoadResult(
        clients=len(clients),
        duration_s=duration_s,
        latencies_ns=latencies,
        sent=sum(tally.sent for tally in tallies),
        ok=len(latencies),
        errors=errors,
        first_error=next((t.first_error for t in tallies if t.first_error), None),
    )
