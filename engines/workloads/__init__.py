"""Workloads: one definition each, run unchanged by every system.

A workload owns three things: the request a client sends (prepared once, reused), the
server-side computation over a batch of requests, and the check that a reply is right.
The pipe engine, the Thrift server and Triton's ``model.py`` all call the same
:meth:`Workload.compute`, so a difference in the numbers comes from the serving path.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class WorkloadParams(BaseModel):
    """Base of every workload's parameters (the scenario's ``workload`` mapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Workload(ABC):
    """What a system computes for one request, defined once for all systems."""

    Params: ClassVar[type[WorkloadParams]] = WorkloadParams
    #: True when requests and replies are named tensors (``dict[str, ndarray]``): only the
    #: systems that carry them (``System.named_tensors``) can serve the workload.
    named: ClassVar[bool] = False
    #: Parameters that are file paths: the scenario resolves them against its own folder,
    #: so every server process finds the same file whatever its working directory.
    paths: ClassVar[tuple[str, ...]] = ()
    #: 0: a reply must equal the expected one byte for byte. Model workloads allow float
    #: noise: the largest difference, relative to the expected reply's largest magnitude.
    tolerance: float = 0.0

    def __init__(self, params: WorkloadParams) -> None:
        self.params = params

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Workload:
        return cls(cls.Params.model_validate(options))

    @property
    def computable(self) -> bool:
        """False when the harness cannot compute this workload (the model is only on a
        remote server): only remote systems serve it, their replies compared with each other."""
        return True

    @property
    def input_data_file(self) -> Path | None:
        """A perf_analyzer input-data file the requests come from, or None: perf_analyzer
        reads that file unchanged."""
        return None

    def declare_tensors(self, inputs: list[Any], outputs: list[Any]) -> None:  # noqa: B027
        """The tensors a remote deployment declares (:class:`tensors.TensorSpec` lists),
        told before any request is made; named-tensor workloads check or adopt them."""

    def unavailable(self) -> str | None:
        """Why this workload cannot be computed on this machine (its runtime is not
        installed, there is no GPU for it), or ``None``. Checked before a system that
        computes it starts: such a system is skipped with this reason, not failed."""
        return None

    def setup(self) -> None:  # noqa: B027 - optional hook, most workloads need nothing
        """Server-side preparation (load a model, read a file); runs once per instance."""

    @abstractmethod
    def make_request(self) -> Any:
        """The request a client sends, without a batch dimension: an array, or named
        arrays (``dict[str, ndarray]``) for a multi-tensor workload (``named``)."""

    def requests(self) -> list[Any]:
        """Every request clients send (each client sends one of them, in turn); the
        equivalence check checks them all."""
        return [self.make_request()]

    @abstractmethod
    def compute(self, batch: Sequence[Any]) -> list[Any]:
        """Replies for a batch of requests, in order."""

    def reply_without_compute(self, request: Any) -> Any:
        """A prepared reply of the right shape, for the pure-RPC systems (the RPC ceiling).

        Echo-like workloads send back the request; model workloads override this with a
        reply prepared once, so the RPC-only systems move the same bytes as the real ones.
        """
        return request

    def expected_reply(self, request: Any) -> Any:
        """The reply a correct system returns for ``request`` (echo by default).

        Computed in the harness's own process, independently of any serving path; model
        workloads load their model here (same seed, so the same weights as the servers).
        """
        return request


#: name -> "module:Class"; a new workload is one module plus one line here.
REGISTRY: dict[str, str] = {
    "echo": "engines.workloads.echo:Echo",
    "sum": "engines.workloads.pysum:PySum",
    "jpeg": "engines.workloads.jpeg:JpegDecode",
    "resnet18": "engines.workloads.resnet:ResNet18",
    "resnet50": "engines.workloads.resnet:ResNet50",
    "onnx": "engines.workloads.onnx_model:OnnxModel",
}


class UnknownWorkloadError(KeyError):
    pass


def workload_class(name: str) -> type[Workload]:
    try:
        target = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownWorkloadError(f"unknown workload {name!r} (known: {known})") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_workload(name: str, options: dict[str, Any]) -> Workload:
    return workload_class(name).from_options(options)
