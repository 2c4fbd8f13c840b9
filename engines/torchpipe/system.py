"""The ``torchpipe`` system: the real torchpipe core called locally, in-process.

``options.backend``: ``python`` runs the scenario's workload in an omniback Python
backend; ``Identity`` / ``Identities`` are its C++ echo backends (the seed's "c++
backend" column, meaningful for echo workloads only); ``DecodeMat`` is the full torchpipe
wheel's C++ JPEG decoder (the jpeg workload only; see :mod:`engines.torchpipe.full`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from engines.torchpipe.core import PYTHON, core_call, require_core
from engines.torchpipe.full import DECODE_MAT, unavailable
from harness.errors import SystemFailure
from harness.system import System, SystemUnavailable


class TorchpipeOptions(BaseModel):
    """Options of the systems that run the torchpipe core (``torchpipe``, ``torchpipe+thrift``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["python", "Identity", "Identities", "DecodeMat"] = PYTHON


def core_config(system: System) -> dict[str, Any]:
    """The arguments of :func:`core_call` a scenario asks for (JSON-serialisable)."""
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


def check_available(system: System) -> None:
    """Raise :class:`SystemUnavailable` with the reason if the backend cannot run here: the
    full wheel is an optional extra, its absence no failure."""
    options = system.options
    assert isinstance(options, TorchpipeOptions)
    require_core()
    if options.backend == DECODE_MAT:
        reason = unavailable()
        if reason:
            raise SystemUnavailable(reason)


class _Client:
    def __init__(self, call: Callable[[np.ndarray], np.ndarray]) -> None:
        self.call = call

    def close(self) -> None:
        pass


class TorchpipeSystem(System):
    Options = TorchpipeOptions
    options: TorchpipeOptions
    _call: Callable[[np.ndarray], np.ndarray] | None = None

    def start(self) -> None:
        check_available(self)
        self._call = core_call(**core_config(self))

    def ready(self, timeout: float) -> None:
        if self._call is None:
            raise SystemFailure(f"{self.spec.column}: not started")

    def client(self) -> _Client:
        assert self._call is not None
        return _Client(self._call)

    def stop(self) -> None:
        self._call = None
