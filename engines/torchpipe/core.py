"""omniback behind pipebench's shapes: a workload backend, unique nodes, a client.

omniback passes tensors through DLPack: numpy arrays go in, ``tvm_ffi`` tensors come out
(``np.from_dlpack`` reads them), and anything stored as a result must be writable.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from engines.workloads import Workload, create_workload
from harness.errors import InputError

_names = itertools.count()
_registered: set[str] = set()
_lock = threading.Lock()


def omniback() -> Any:
    """Import omniback, or explain how to get it."""
    try:
        import omniback as module
    except ImportError:
        raise InputError(
            "torchpipe: the torchpipe core is not installed (pip install 'pipebench[torchpipe]')"
        ) from None
    return module


def writable(array: Any) -> np.ndarray:
    return np.require(np.asarray(array), requirements=["W", "C"])


class WorkloadBackend:
    """An omniback Python backend that runs a pipebench workload (params: ``workload``)."""

    workload: Workload

    def init(self, params: Any, options: Any) -> None:
        spec = json.loads(params["workload"])
        self._max = int(params.get("max", 1))
        self.workload = create_workload(spec["name"], spec.get("options", {}))
        self.workload.setup()

    def forward(self, ios: list[Any]) -> None:
        replies = self.workload.compute([np.from_dlpack(io["data"]) for io in ios])
        for io, reply in zip(ios, replies, strict=True):
            io["result"] = writable(reply)

    def max(self) -> int:
        return self._max


def register_once(name: str, cls: type) -> str:
    with _lock:
        if name not in _registered:
            omniback().register(name, cls)
            _registered.add(name)
    return name


def make_pipe(
    backend: str, instances: int, timeout_ms: float, max_batch: int, **params: str
) -> Any:
    """A new omniback pipeline of one uniquely named node (names must not collide)."""
    node = f"pipebench_{next(_names)}"
    config = {
        "backend": backend,
        "instance_num": instances,
        "batching_timeout": round(timeout_ms),  # omniback wants an integer
        "max": max_batch,
        **params,
    }
    return omniback().pipe({node: config})


class OmnibackClient:
    """Calls an omniback pipeline the way its users do: a dict with ``data``."""

    def __init__(self, pipe: Callable[[dict[str, Any]], Any]) -> None:
        self._pipe = pipe

    def call(self, request: np.ndarray) -> np.ndarray:
        io = {"data": request}
        self._pipe(io)
        if "result" not in io:
            raise RuntimeError("torchpipe: no result (the backend failed)")
        return np.from_dlpack(io["result"])

    def close(self) -> None:
        pass
