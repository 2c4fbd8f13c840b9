"""The ``triton`` and ``triton-rpc`` systems."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from engines.triton.client import TritonClient
from engines.triton.http_client import LeanHttpClient
from engines.triton.perf_analyzer import PerfAnalyzer
from engines.triton.server import TritonServer
from engines.workloads import create_workload
from harness.errors import SystemFailure
from harness.system import System


class TritonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["http", "grpc"] = "http"
    #: Path to a tritonserver binary of your own; default: the one in nvidia-pytriton.
    binary: str | None = None
    #: The load generator's client: ``tritonclient`` (the official Python library, the
    #: default: it is what Triton's users call, the seed's "triton-cli"; it costs more client
    #: CPU than Triton spends serving echo, see benchmarks/triton_client.py), ``lean`` (HTTP
    #: only: the same protocol with prepared bytes on one socket,
    #: engines/triton/http_client.py, to see the server without that client cost) or
    #: ``perf_analyzer`` (Triton's own C++ load generator, engines/triton/perf_analyzer.py).
    client: Literal["tritonclient", "lean", "perf_analyzer"] = "tritonclient"

    @model_validator(mode="after")
    def _lean_is_http(self) -> TritonOptions:
        if self.client == "lean" and self.protocol != "http":
            raise ValueError("client lean speaks HTTP only: use protocol http")
        return self

    @field_validator("binary")
    @classmethod
    def _executable(cls, binary: str | None) -> str | None:
        if binary is not None and not (Path(binary).is_file() and os.access(binary, os.X_OK)):
            raise ValueError(f"tritonserver binary not found or not executable: {binary}")
        return binary


class TritonSystem(System):
    """``triton``: the workload in Triton's Python backend, driven over HTTP or gRPC."""

    Options = TritonOptions
    options: TritonOptions
    _server: TritonServer | None = None

    def start(self) -> None:
        workload = create_workload(self.scenario.workload.name, self.scenario.workload.options)
        self._server = TritonServer(
            self.spec.column, self.scenario, workload, self.computes, self.options.binary
        )

    def _url(self) -> str:
        server = self._require_server()
        return server.grpc_url if self.options.protocol == "grpc" else server.http_url

    def ready(self, timeout: float) -> None:
        server = self._require_server()
        probe = TritonClient(self.options.protocol, self._url(), server.model_name, timeout_s=2)
        try:
            server.process.wait_for(
                lambda: probe.is_ready(server.model_name), timeout, "ready to serve"
            )
        finally:
            probe.close()
        server.loaded()

    def client(self) -> TritonClient | LeanHttpClient:
        return self.client_factory()()

    def client_factory(self) -> Callable[[], TritonClient | LeanHttpClient]:
        server, timeout = self._require_server(), self.scenario.load.request_timeout_s
        if self.options.client == "lean":
            return functools.partial(LeanHttpClient, self._url(), server.model_name, timeout)
        protocol = self.options.protocol
        return functools.partial(TritonClient, protocol, self._url(), server.model_name, timeout)

    def load_generator(self) -> PerfAnalyzer | None:
        if self.options.client != "perf_analyzer":
            return None
        load, workload = self.scenario.load, self.scenario.workload
        return PerfAnalyzer(
            self._url(),
            self.options.protocol,
            self._require_server().model_name,
            create_workload(workload.name, workload.options).make_request(),
            load.mode,
            load.arrival,
            load.max_outstanding,
            load.request_timeout_s,
        )

    def server_pids(self) -> list[int]:
        return [self._server.process.pid] if self._server is not None else []

    def batch_sizes(self, stats: dict[str, Any]) -> dict[int, int]:
        """Executions per batch size, from ``v2/models/<m>/stats`` (``batch_stats``)."""
        found: dict[int, int] = {}
        for model in stats.get("model_stats", []):
            for entry in model.get("batch_stats", []):
                size = int(entry["batch_size"])
                found[size] = found.get(size, 0) + int(entry["compute_infer"]["count"])
        return found

    def stats(self) -> dict[str, Any]:
        server = self._server
        if server is None or not server.process.alive():
            return {}
        client = TritonClient("http", server.http_url, server.model_name, timeout_s=5)
        try:
            return client.model_statistics()
        finally:
            client.close()

    def check_alive(self) -> None:
        self._require_server().process.check_alive()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _require_server(self) -> TritonServer:
        if self._server is None:
            raise SystemFailure(f"{self.spec.column}: not started")
        return self._server


class TritonRpcSystem(TritonSystem):
    """``triton-rpc``: the same server and model, replying without computing."""

    computes = False
