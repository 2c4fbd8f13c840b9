"""The ``thrift``, ``pipe+thrift`` and ``torchpipe+thrift`` systems: one Thrift server
process (:mod:`engines.thrift.server`), Thrift clients; only the engine behind it differs.

With ``options.address`` (``host:port``) the server is someone else's (e.g. one that
``bench serve`` keeps up): the harness connects, reads its serving block and measures
it, and starts and stops nothing.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict
from thrift.transport.TTransport import TTransportException

from engines.pipe.stats import server_times
from engines.pipe.system import PipeOptions, node_config
from engines.thrift.client import ThriftClient, try_connect
from engines.thrift.server import READY
from engines.torchpipe.system import TorchpipeOptions, check_available, core_config
from harness.deployment import check_serving
from harness.errors import SystemFailure
from harness.process import ServerProcess
from harness.system import System

_READY_LINE = re.compile(rf"^{READY} (\d+)$", re.MULTILINE)


def _host_port(address: str) -> str:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return address


#: ``host:port`` of a Thrift server the harness does not start.
Address = Annotated[str, AfterValidator(_host_port)]


class ThriftOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address | None = None


class PipeThriftOptions(PipeOptions):
    address: Address | None = None


class ThriftSystem(System):
    """``thrift``: the pure RPC server, which replies without computing."""

    Options: ClassVar[type[BaseModel]] = ThriftOptions
    mode: ClassVar[str] = "null"
    computes = False
    named_tensors = True
    serves = True
    _process: ServerProcess | None = None
    _port: int | None = None
    _deployed: dict[str, Any] | None = None

    @property
    def _address(self) -> str | None:
        return getattr(self.options, "address", None)

    @property
    def remote(self) -> bool:
        return self._address is not None

    def server_config(self) -> dict[str, Any]:
        workload = self.scenario.workload
        return {"workload": {"name": workload.name, "options": workload.options}}

    @property
    def _host(self) -> str:
        """Where clients connect: the remote server's host, or where ours binds."""
        return self._address.rpartition(":")[0] if self._address is not None else self.host

    def start(self) -> None:
        if self._address is not None:
            self._port = int(self._address.rpartition(":")[2])
            return
        config = {
            "mode": self.mode,
            "host": self.host,
            "threads": self.max_clients + 2,
            **self.server_config(),
        }
        argv = [sys.executable, "-m", "engines.thrift.server"]
        self._process = ServerProcess(self.spec.column, argv, config=json.dumps(config).encode())

    def ready(self, timeout: float) -> None:
        if self.remote:
            self._await_remote(timeout)
            return
        process = self._require_process()
        process.wait_for(self._read_port, timeout, "listening")
        probe = try_connect(self._port, timeout, self._host)  # type: ignore[arg-type]
        if probe is None:
            raise SystemFailure(f"{self.spec.column}: listening on {self._port} but not answering")
        probe.close()

    def _await_remote(self, timeout: float) -> None:
        """Wait until the server answers ``ping``; check its serving block (if it has one)."""
        deadline = time.monotonic() + timeout
        while (probe := try_connect(self._require_port(), 2.0, self._host)) is None:
            if time.monotonic() > deadline:
                raise SystemFailure(
                    f"{self.spec.column}: no Thrift server answers at {self._address} "
                    f"after {timeout:g} s"
                )
            time.sleep(0.2)
        try:
            self._deployed = probe.stats().get("serving")
        finally:
            probe.close()
        if self._deployed is not None:
            check_serving(self.scenario, self._deployed, f"{self.spec.column} ({self._address})")

    def _read_port(self) -> bool:
        match = _READY_LINE.search(self._require_process().log_tail(50))
        if match:
            self._port = int(match.group(1))
        return match is not None

    def endpoints(self) -> dict[str, str]:
        return {"address": f"{self._host}:{self._require_port()}"}

    def client(self) -> ThriftClient:
        return self.client_factory()()

    def client_factory(self) -> Callable[[], ThriftClient]:
        timeout = self.scenario.load.request_timeout_s
        return functools.partial(ThriftClient, self._require_port(), timeout, self._host)

    def server_pids(self) -> list[int]:
        return [self._process.pid] if self._process is not None else []

    def stats(self) -> dict[str, Any]:
        if self._port is None or (self._process is not None and not self._process.alive()):
            return {}
        try:
            client = ThriftClient(self._port, 5, self._host)
        except TTransportException:
            return {}
        try:
            found = client.stats()
        finally:
            client.close()
        if self.remote:
            found["server_cpu"] = "unknown: a remote server (not started by the harness)"
        return found

    def server_times(self, stats: dict[str, Any]) -> dict[str, float] | None:
        return server_times(stats)

    def check_alive(self) -> None:
        if not self.remote:
            self._require_process().check_alive()
            return
        probe = try_connect(self._require_port(), 5.0, self._host)
        if probe is None:
            raise SystemFailure(f"{self.spec.column}: {self._address} no longer answers")
        probe.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        self._port = None

    def _require_process(self) -> ServerProcess:
        if self._process is None:
            raise SystemFailure(f"{self.spec.column}: not started")
        return self._process

    def _require_port(self) -> int:
        if self._port is None:
            raise SystemFailure(f"{self.spec.column}: not ready")
        return self._port


class PipeThriftSystem(ThriftSystem):
    """``pipe+thrift``: the pipe engine behind the Thrift server."""

    Options = PipeThriftOptions
    options: PipeThriftOptions
    mode = "pipe"
    computes = True

    @property
    def reply_known(self) -> bool:
        return self.options.backend is None

    def server_config(self) -> dict[str, Any]:
        return {"node": node_config(self)}


class TorchpipeThriftSystem(ThriftSystem):
    """``torchpipe+thrift``: the real torchpipe core behind the same Thrift server."""

    Options = TorchpipeOptions
    mode = "torchpipe"
    computes = True
    named_tensors = False  # the core's python backend takes one array per request

    def server_config(self) -> dict[str, Any]:
        check_available(self)  # a clear reason here, not a server that dies starting
        return {"core": core_config(self)}
