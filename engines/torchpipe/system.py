"""The ``torchpipe`` system: the real torchpipe core called locally, in-process.

``options.backend``: ``python`` runs the scenario's workload in an omniback Python
backend; ``Identity`` / ``Identities`` are its C++ echo backends (the seed's "c++
backend" column, meaningful for echo workloads only).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from engines.torchpipe.core import PYTHON, OmnibackClient, workload_pipe
from harness.errors import SystemFailure
from harness.system import System


class TorchpipeOptions(BaseModel):
    """Options of the systems that run the torchpipe core (``torchpipe``, ``torchpipe+thrift``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["python", "Identity", "Identities"] = PYTHON


def core_config(system: System) -> dict[str, Any]:
    """The arguments of :func:`workload_pipe` a scenario asks for (JSON-serialisable)."""
    options = system.options
    assert isinstance(options, TorchpipeOptions)
    serving, workload = system.scenario.serving, system.scenario.workload
    return {
        "backend": options.backend,
        "serving": {
            "instances": serving.instances,
            "batching_timeout_ms": serving.batching_timeout_ms,
            "max_batch": serving.max_batch,
        },
        "workload": {"name": workload.name, "options": workload.options},
    }


class TorchpipeSystem(System):
    Options = TorchpipeOptions
    options: TorchpipeOptions
    _pipe: Any = None

    def start(self) -> None:
        self._pipe = workload_pipe(**core_config(self))

    def ready(self, timeout: float) -> None:
        if self._pipe is None:
            raise SystemFailure(f"{self.spec.column}: not started")

    def client(self) -> OmnibackClient:
        return OmnibackClient(self._pipe)

    def stop(self) -> None:
        self._pipe = None
