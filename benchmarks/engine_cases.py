"""Backends and one measurement for benchmarks/engine.py, for both engines.

Each backend exists twice with the same behaviour: a pipe ``Backend`` and an omniback
Python backend (``init(params, options)``, ``forward(ios)``, ``max()``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from engines.pipe import Backend, Pipe, register_backend
from engines.torchpipe.core import OmnibackClient, make_pipe, register_once, writable
from harness.loadgen import Plan, ThreadHost, clock, drive
from harness.measurement import Probe, Timing


def _echo(batch: Sequence[Any]) -> list[Any]:
    return list(batch)


def _sleep_fixed(batch: Sequence[Any]) -> list[Any]:
    time.sleep(0.002)  # a fixed cost per batch: full batches pay off
    return list(batch)


def _sleep_per_item(batch: Sequence[Any]) -> list[Any]:
    time.sleep(0.001 * len(batch))  # a cost per item: batching gains nothing
    return list(batch)


def _gil_sum(batch: Sequence[Any]) -> list[Any]:
    for _ in batch:
        sum(range(1, 100001))  # pure Python, holds the GIL
    return list(batch)


WORK = {"echo": _echo, "sleep_fixed": _sleep_fixed, "sleep_item": _sleep_per_item, "sum": _gil_sum}


def _pipe_backend(work: str) -> type[Backend]:
    function = WORK[work]

    class Work(Backend):
        def forward(self, batch: Sequence[Any]) -> list[Any]:
            return function(batch)

    Work.__name__ = Work.__qualname__ = f"PipeWork_{work}"
    return Work


class _OmniWork:
    def init(self, params: Any, options: Any) -> None:
        self._work = WORK[params["work"]]
        self._max = int(params["max"])

    def forward(self, ios: list[Any]) -> None:
        for io, reply in zip(ios, self._work([io["data"] for io in ios]), strict=True):
            io["result"] = writable(np.from_dlpack(reply))

    def max(self) -> int:
        return self._max


# Picklable by name for process instances.
PipeWork_echo = _pipe_backend("echo")
PipeWork_sleep_fixed = _pipe_backend("sleep_fixed")
PipeWork_sleep_item = _pipe_backend("sleep_item")
PipeWork_sum = _pipe_backend("sum")
for _name, _cls in [
    ("echo", PipeWork_echo),
    ("sleep_fixed", PipeWork_sleep_fixed),
    ("sleep_item", PipeWork_sleep_item),
    ("sum", PipeWork_sum),
]:
    _cls.__module__ = __name__
    register_backend(f"bench.{_name}", _cls)


class _PipeClient:
    def __init__(self, pipe: Pipe) -> None:
        self.call = pipe

    def close(self) -> None:
        pass


def measure(case: dict[str, Any]) -> dict[str, float]:
    """Closed-loop QPS, TP50, TP99 and CPU seconds per request for one engine and case."""
    if case["engine"] == "pipe":
        pipe: Any = Pipe(
            {
                "backend": f"bench.{case['work']}",
                "instance_num": case["instances"],
                "batching_timeout": case["timeout"],
                "max": case["max"],
                "policy": case.get("policy", "adaptive"),
                "kind": case.get("kind", "thread"),
            }
        )
        clients: list[Any] = [_PipeClient(pipe) for _ in range(case["clients"])]
    else:
        backend = register_once("BenchWork", _OmniWork)
        pipe = make_pipe(
            backend, case["instances"], case["timeout"], case["max"], work=case["work"]
        )
        clients = [OmnibackClient(pipe) for _ in range(case["clients"])]
    requests = [np.frombuffer(b"HelloWorld", np.uint8).copy() for _ in clients]
    host = ThreadHost(clients, requests, Plan("closed", senders=len(clients), timeout_s=30))
    # Three windows, no stability cut-off: both engines get the same measured time.
    timing = Timing(case["warmup"], case["seconds"] / 3, max_windows=3, stability_pct=1e9)
    run = drive([host], timing, 30, probe=lambda: Probe(clock(), time.process_time(), None))
    if case["engine"] == "pipe":
        pipe.close()
    assert run.probe_start and run.probe_end
    latency_ms = run.measured().ok_latencies() / 1e6
    cpu = run.probe_end.client_cpu_s - run.probe_start.client_cpu_s
    return {
        "qps": run.qps,
        "p50": float(np.percentile(latency_ms, 50)),
        "p99": float(np.percentile(latency_ms, 99)),
        "cpu_per_request": cpu / max(len(latency_ms), 1),
    }
