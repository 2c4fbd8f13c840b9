"""The ``triton`` and ``triton-rpc`` systems."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from engines.triton import metrics
from engines.triton.client import (
    TritonClient,
    config_batches,
    declared_tensors,
    deployed_serving,
)
from engines.triton.http_client import LeanHttpClient
from engines.triton.perf_analyzer import PerfAnalyzer
from engines.triton.repository import scalar_outputs
from engines.triton.server import TritonServer
from engines.workloads import Workload, create_workload
from engines.workloads.tensors import TensorSpec
from harness.deployment import check_serving
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
    #: A Triton the harness does not start (``http://host:8000`` or ``grpc://host:8001``;
    #: the scheme chooses the protocol): it is only measured, never started or stopped.
    url: str | None = None
    #: The model to measure on that server (required with ``url``).
    model: str | None = None
    #: Its Prometheus endpoint; default: the url's host, port 8002, ``/metrics``.
    metrics_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _protocol_from_scheme(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            scheme, sep, _ = data["url"].partition("://")
            if sep and scheme in ("http", "grpc"):
                if data.get("protocol", scheme) != scheme:
                    raise ValueError(f"url is {scheme} but protocol is {data['protocol']}")
                data = {**data, "protocol": scheme}
            elif sep:
                raise ValueError(f"url: scheme {scheme}:// is neither http:// nor grpc://")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TritonOptions:
        if self.client == "lean" and self.protocol != "http":
            raise ValueError("client lean speaks HTTP only: use protocol http")
        if self.url is not None and self.model is None:
            raise ValueError("model: name the model to measure on the server at url")
        if self.url is None and (self.model is not None or self.metrics_url is not None):
            raise ValueError("model and metrics_url are for a remote Triton: give its url")
        if self.url is not None and self.binary is not None:
            raise ValueError("binary starts a Triton, url measures a running one: not both")
        return self

    @property
    def address(self) -> str | None:
        """``host:port`` of the remote server (what tritonclient takes)."""
        return self.url.partition("://")[2] or self.url if self.url else None

    @property
    def remote_metrics(self) -> str | None:
        if self.metrics_url or self.address is None:
            return self.metrics_url
        host = self.address.rpartition(":")[0] or self.address
        return f"http://{host}:8002/metrics"

    @field_validator("binary")
    @classmethod
    def _executable(cls, binary: str | None) -> str | None:
        if binary is not None and not (Path(binary).is_file() and os.access(binary, os.X_OK)):
            raise ValueError(f"tritonserver binary not found or not executable: {binary}")
        return binary


class TritonSystem(System):
    """``triton``: the workload in Triton's Python backend, driven over HTTP or gRPC.

    With ``options.url`` it is someone else's Triton: nothing is started or stopped, its
    readiness is checked, its model's serving configuration is read and recorded.
    """

    Options = TritonOptions
    named_tensors = True
    declares_tensors = True
    options: TritonOptions
    serves = True
    _server: TritonServer | None = None
    _started: bool = False
    _deployed: dict[str, Any] | None = None
    _declared: tuple[list[TensorSpec], list[TensorSpec]] | None = None

    @property
    def remote(self) -> bool:
        return self.options.url is not None

    def start(self) -> None:
        self._started = True
        if self.remote:
            return
        workload = create_workload(self.scenario.workload.name, self.scenario.workload.options)
        self._server = TritonServer(
            self.spec.column,
            self.scenario,
            workload,
            self.computes,
            self.options.binary,
            self.host,
        )

    def _url(self) -> str:
        if self.options.address is not None:
            return self.options.address
        server = self._require_server()
        return server.grpc_url if self.options.protocol == "grpc" else server.http_url

    def _model(self) -> str:
        return self.options.model or self._require_server().model_name

    def _metrics_url(self) -> str | None:
        if self.remote:
            return self.options.remote_metrics
        return self._require_server().metrics_url

    def _probe(self, timeout_s: float = 5) -> TritonClient:
        return TritonClient(self.options.protocol, self._url(), self._model(), timeout_s)

    def ready(self, timeout: float) -> None:
        probe = self._probe(timeout_s=2)
        try:
            if self.remote:
                self._await_remote(probe, timeout)
            else:
                server = self._require_server()
                server.process.wait_for(
                    lambda: probe.is_ready(server.model_name), timeout, "ready to serve"
                )
                server.loaded()
        finally:
            probe.close()

    def _await_remote(self, probe: TritonClient, timeout: float) -> None:
        """Wait for the remote model, read its serving block, compare it with the scenario."""
        deadline = time.monotonic() + timeout
        while not probe.is_ready(self._model()):
            if time.monotonic() > deadline:
                raise SystemFailure(
                    f"{self.spec.column}: model {self._model()!r} not ready at "
                    f"{self.options.url} after {timeout:g} s"
                )
            time.sleep(0.2)
        config = probe.model_config()
        self._deployed = deployed_serving(config)
        self._declared = declared_tensors(probe.model_metadata(), batched=config_batches(config))
        where = f"{self.spec.column} ({self.options.url}, model {self._model()})"
        check_serving(self.scenario, self._deployed, where)

    def declared_tensors(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        return self._declared

    @property
    def reply_known(self) -> bool:
        """A remote model the harness has no file of: its replies are only compared."""
        return not self.remote or self._workload.computable

    @functools.cached_property
    def _workload(self) -> Workload:
        return create_workload(self.scenario.workload.name, self.scenario.workload.options)

    def endpoints(self) -> dict[str, str]:
        if self.remote:
            return {"url": str(self.options.url), "model": self._model()}
        server = self._require_server()
        return {
            "http": f"http://{server.http_url}",
            "grpc": f"grpc://{server.grpc_url}",
            "metrics": server.metrics_url,
            "model": server.model_name,
        }

    def client(self) -> TritonClient | LeanHttpClient:
        return self.client_factory()()

    def client_factory(self) -> Callable[[], TritonClient | LeanHttpClient]:
        timeout, scalars = self.scenario.load.request_timeout_s, self._scalar_outputs
        if self.options.client == "lean":
            return functools.partial(
                LeanHttpClient, self._url(), self._model(), timeout, scalar_outputs=scalars
            )
        protocol = self.options.protocol
        return functools.partial(
            TritonClient, protocol, self._url(), self._model(), timeout, scalars
        )

    @functools.cached_property
    def _scalar_outputs(self) -> tuple[str, ...]:
        return scalar_outputs(self._workload) if self._workload.computable else ()

    def load_generator(self) -> PerfAnalyzer | None:
        if self.options.client != "perf_analyzer":
            return None
        load, workload = self.scenario.load, self._workload
        given = workload.input_data_file
        return PerfAnalyzer(
            self._url(),
            self.options.protocol,
            self._model(),
            given if given is not None else workload.requests(),
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

    def server_times(self, stats: dict[str, Any]) -> dict[str, float] | None:
        scraped = stats.get("metrics")
        return metrics.server_times(scraped) if isinstance(scraped, dict) else None

    def stats(self) -> dict[str, Any]:
        """Model statistics and a ``/metrics`` scrape; for a remote server also its serving
        block, and a note that its CPU use is unknown (the record's ``server_pct`` is None)."""
        if not self._started or (self._server is not None and not self._server.process.alive()):
            return {}
        client = self._probe()
        try:
            found: dict[str, Any] = client.model_statistics()
        except Exception:
            return {}
        finally:
            client.close()
        url = self._metrics_url()
        if url is not None:
            found["metrics"] = metrics.try_scrape(url, self._model())
        if self.remote:
            found["serving"] = self._deployed
            found["server_cpu"] = "unknown: a remote server (not started by the harness)"
        return found

    def check_alive(self) -> None:
        if not self.remote:
            self._require_server().process.check_alive()
            return
        probe = self._probe()
        try:
            if not probe.is_ready(self._model()):
                raise SystemFailure(f"{self.spec.column}: {self.options.url} no longer ready")
        finally:
            probe.close()

    def stop(self) -> None:
        self._started = False
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
