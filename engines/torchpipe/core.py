"""omniback behind pipebench's shapes: a workload backend, unique nodes, a client.

omniback passes tensors through DLPack: numpy arrays go in, ``tvm_ffi`` tensors come out
(``np.from_dlpack`` reads them), and anything stored as a result must be writable. DLPack
has no strings, so a BYTES array (a 1-D numpy ``object`` array of ``bytes``, the echo
workload's ``bytes`` type) travels as a list of ``bytes``, which the core carries natively.
"""

from __future__ import annotations

import importlib.util
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

#: The system option naming the Python backend that runs the scenario's workload.
PYTHON = "python"
_WORKLOAD_BACKEND = "PipebenchWorkload"


def omniback() -> Any:
    """Import omniback, or explain how to get it."""
    try:
        import omniback as module
    except ImportError:
        raise InputError(
            "torchpipe: the torchpipe core is not installed "
            "(pip install 'pipebench[torchpipe]': omniback 0.2.24)"
        ) from None
    return module


def require_core() -> None:
    """Fail with :func:`omniback`'s message unless the core is installed, without loading it
    (a server process that would import it checks here first, in the harness)."""
    if importlib.util.find_spec("omniback") is None:
        omniback()


def writable(array: Any) -> np.ndarray:
    """``array`` as the core accepts it: DLPack cannot export a read-only array."""
    return np.require(np.asarray(array), requirements=["W", "C"])


def to_core(array: np.ndarray) -> Any:
    """What the core takes for ``array``: itself (writable), or a BYTES array's items."""
    if array.dtype == object:
        return [bytes(item) for item in array.reshape(-1)]
    return writable(array)


def from_core(value: Any) -> np.ndarray:
    """The numpy array the core's ``value`` stands for (see :func:`to_core`)."""
    if hasattr(value, "__dlpack__"):
        return np.from_dlpack(value)
    array = np.empty(len(value), dtype=object)
    array[:] = [bytes(item) for item in value]
    return array


class WorkloadBackend:
    """An omniback Python backend that runs a pipebench workload (params: ``workload``)."""

    workload: Workload

    def init(self, params: Any, options: Any) -> None:
        spec = json.loads(params["workload"])
        self._max = int(params.get("max", 1))
        self.workload = create_workload(spec["name"], spec.get("options", {}))
        self.workload.setup()

    def forward(self, ios: list[Any]) -> None:
        replies = self.workload.compute([from_core(io["data"]) for io in ios])
        for io, reply in zip(ios, replies, strict=True):
            io["result"] = to_core(reply)

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


def workload_pipe(backend: str, serving: dict[str, Any], workload: dict[str, Any]) -> Any:
    """The pipeline a scenario asks for: ``backend`` is :data:`PYTHON` (the scenario's
    workload in a Python backend) or a C++ backend's name; ``serving`` is the scenario's
    serving block, ``workload`` its ``{"name", "options"}``. Shared by the in-process
    ``torchpipe`` system and the ``torchpipe+thrift`` server, so both run the same node."""
    params: dict[str, str] = {}
    if backend == PYTHON:
        backend = register_once(_WORKLOAD_BACKEND, WorkloadBackend)
        params["workload"] = json.dumps(workload)
    return make_pipe(
        backend,
        serving["instances"],
        serving["batching_timeout_ms"],
        serving["max_batch"],
        **params,
    )


def core_call(
    backend: str, serving: dict[str, Any], workload: dict[str, Any]
) -> Callable[[np.ndarray], np.ndarray]:
    """One request in, its reply out, through the core; arguments as :func:`workload_pipe`,
    or ``DecodeMat`` (the jpeg workload decoded by the full torchpipe wheel's C++ decoder)."""
    from engines.torchpipe.full import DECODE_MAT, DecodeMatCall

    if backend == DECODE_MAT:
        return DecodeMatCall(serving, workload)
    return OmnibackClient(workload_pipe(backend, serving, workload)).call


class OmnibackClient:
    """Calls an omniback pipeline the way its users do: a dict with ``data``."""

    def __init__(self, pipe: Callable[[dict[str, Any]], Any]) -> None:
        self._pipe = pipe

    def call(self, request: np.ndarray) -> np.ndarray:
        io = {"data": to_core(request)}
        self._pipe(io)
        if "result" not in io:
            raise RuntimeError("torchpipe: no result (the backend failed)")
        return from_core(io["result"])

    def close(self) -> None:
        pass
