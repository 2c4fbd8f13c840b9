"""The ``torchpipe`` system: the real torchpipe core called locally, in-process.

``options.backend``: ``python`` runs the scenario's workload in an omniback Python
backend; ``Identity`` / ``Identities`` are its C++ echo backends (the seed's "c++
backend" column, meaningful for echo workloads only).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from engines.torchpipe.core import (
    OmnibackClient,
    WorkloadBackend,
    make_pipe,
    register_once,
    writable,
)
from harness.errors import SystemFailure
from harness.system import System


class TorchpipeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["python", "Identity", "Identities"] = "python"


class _Client(OmnibackClient):
    def call(self, request: np.ndarray) -> np.ndarray:
        return super().call(writable(request))


class TorchpipeSystem(System):
    Options = TorchpipeOptions
    options: TorchpipeOptions
    _pipe: Any = None

    def start(self) -> None:
        serving, workload = self.scenario.serving, self.scenario.workload
        params: dict[str, str] = {}
        backend = self.options.backend
        if backend == "python":
            backend = register_once("PipebenchWorkload", WorkloadBackend)
            params["workload"] = json.dumps({"name": workload.name, "options": workload.options})
        self._pipe = make_pipe(
            backend, serving.instances, serving.batching_timeout_ms, serving.max_batch, **params
        )

    def ready(self, timeout: float) -> None:
        if self._pipe is None:
            raise SystemFailure(f"{self.spec.column}: not started")

    def client(self) -> _Client:
        return _Client(self._pipe)

    def stop(self) -> None:
        self._pipe = None
