"""The ``triton`` and ``triton-rpc`` systems."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from engines.triton.client import TritonClient
from engines.triton.server import TritonServer
from engines.workloads import create_workload
from harness.errors import SystemFailure
from harness.system import System


class TritonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Literal["http", "grpc"] = "http"
    #: Path to a tritonserver binary of your own; default: the one in nvidia-pytriton.
    binary: str | None = None

    @field_validator("binary")
    @classmethod
    def _executable(cls, binary: str | None) -> str | None:
        if binary is not None and not (Path(binary).is_file() and os.access(binary, os.X_OK)):
            raise ValueError(f"tritonserver binary not found or not executable: {binary}")
        return binary


class TritonSystem(System):
    """``triton``: the workload in Triton's Python backend, driven by tritonclient."""

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

    def client(self) -> TritonClient:
        server = self._require_server()
        return TritonClient(
            self.options.protocol,
            self._url(),
            server.model_name,
            self.scenario.load.request_timeout_s,
        )

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
