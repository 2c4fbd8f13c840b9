"""The ``null`` system: a client whose call returns at once, in-process.

It measures the load generator itself: whatever QPS it reaches with the same clients and
placement is the ceiling no measured system can approach without the numbers describing
the client rather than the server. The runner measures it in every run and flags results
above half of it as ``client_bound``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from engines.workloads import create_workload
from harness.errors import SystemFailure
from harness.system import System


class NullClient:
    """Replies with the workload's prepared reply, computed once per request object."""

    def __init__(self, workload: str, options: dict[str, Any]) -> None:
        self._workload = create_workload(workload, options)
        self._request: np.ndarray | None = None
        self._reply: np.ndarray | None = None

    def call(self, request: np.ndarray) -> np.ndarray:
        if request is not self._request:
            self._request, self._reply = request, self._workload.reply_without_compute(request)
        return self._reply  # type: ignore[return-value]

    def close(self) -> None:
        pass


class NullSystem(System):
    """No server, no work: the client ceiling."""

    computes = False
    named_tensors = True
    _started = False

    def start(self) -> None:
        self._started = True

    def ready(self, timeout: float) -> None:
        if not self._started:
            raise SystemFailure("null: not started")

    def client(self) -> NullClient:
        return self.client_factory()()

    def client_factory(self) -> Callable[[], NullClient]:
        workload = self.scenario.workload
        return functools.partial(NullClient, workload.name, workload.options)

    def stop(self) -> None:
        self._started = False
