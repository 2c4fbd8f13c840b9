"""The ``pipe`` system: the engine called locally, in the load generator's own process."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engines.pipe.backends import backend_class
from engines.pipe.engine import Pipe
from engines.pipe.stats import server_times
from engines.pipe.workload_backend import BACKEND_NAME
from harness.errors import SystemFailure
from harness.system import System


class PipeOptions(BaseModel):
    """Options of the systems that run the pipe engine (``pipe``, ``pipe+thrift``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["adaptive", "torchpipe", "torchpipe-v0"] = "adaptive"
    kind: Literal["thread", "process"] = "thread"
    #: Your own backend, ``"module:Class"`` (importable, e.g. from the current directory),
    #: instead of the scenario's workload: ``init(params)`` once per instance, then
    #: ``forward(batch) -> list`` with one reply per request (see the README).
    backend: str | None = None
    #: What your backend's ``init`` receives.
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _importable(cls, backend: str | None) -> str | None:
        if backend is not None and backend_class(backend) is None:
            raise ValueError(f"{backend!r} is not an importable module:Class with a forward method")
        return backend

    @model_validator(mode="after")
    def _params_need_a_backend(self) -> PipeOptions:
        if self.params and self.backend is None:
            raise ValueError("params are for your own backend: give backend too")
        return self


def node_config(system: System) -> dict[str, Any]:
    """The engine config a scenario asks for: its serving block, workload and options."""
    serving, workload = system.scenario.serving, system.scenario.workload
    options = system.options
    assert isinstance(options, PipeOptions)
    if options.backend is not None:
        params: dict[str, Any] = dict(options.params)
    else:
        params = {"workload": workload.name, "options": workload.options}
    return {
        "backend": options.backend or BACKEND_NAME,
        "instance_num": serving.instances,
        "batching_timeout": serving.batching_timeout_ms,
        "max": serving.max_batch,
        "policy": options.policy,
        "kind": options.kind,
        "params": params,
    }


#: How long stopping waits for in-flight backend calls before reporting a hang.
CLOSE_TIMEOUT_S = 30.0


class _PipeClient:
    def __init__(self, pipe: Pipe, timeout: float) -> None:
        self._pipe = pipe
        self._timeout = timeout

    def call(self, request: np.ndarray) -> np.ndarray:
        return self._pipe(request, self._timeout)

    def close(self) -> None:
        pass


class PipeSystem(System):
    Options = PipeOptions
    named_tensors = True
    options: PipeOptions
    _pipe: Pipe | None = None

    @property
    def reply_known(self) -> bool:
        return self.options.backend is None

    def start(self) -> None:
        self._pipe = Pipe(node_config(self))

    def ready(self, timeout: float) -> None:
        if self._pipe is None:
            raise SystemFailure("pipe: not started")

    def client(self) -> _PipeClient:
        assert self._pipe is not None
        return _PipeClient(self._pipe, self.scenario.load.request_timeout_s)

    def stats(self) -> dict[str, Any]:
        return self._pipe.stats() if self._pipe else {}

    def server_times(self, stats: dict[str, Any]) -> dict[str, float] | None:
        return server_times(stats)

    def stop(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                pipe.close(timeout=CLOSE_TIMEOUT_S)
            except TimeoutError as exc:
                raise SystemFailure(f"{self.spec.column}: {exc} (a backend call hangs)") from None
