"""The ``pipe+thrift`` and ``thrift`` systems: a Thrift server process, Thrift clients."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from engines.pipe.system import PipeOptions, node_config
from engines.thrift.client import ThriftClient, try_connect
from engines.thrift.server import READY
from harness.errors import SystemFailure
from harness.process import ServerProcess
from harness.system import System

_READY_LINE = re.compile(rf"^{READY} (\d+)$", re.MULTILINE)


class ThriftSystem(System):
    """``thrift``: the pure RPC server, which replies without computing."""

    mode: ClassVar[str] = "null"
    computes = False
    _process: ServerProcess | None = None
    _port: int | None = None

    def server_config(self) -> dict[str, Any]:
        workload = self.scenario.workload
        return {"workload": {"name": workload.name, "options": workload.options}}

    def start(self) -> None:
        config = {"mode": self.mode, "threads": self.max_clients + 2, **self.server_config()}
        argv = [sys.executable, "-m", "engines.thrift.server"]
        self._process = ServerProcess(self.spec.column, argv, config=json.dumps(config).encode())

    def ready(self, timeout: float) -> None:
        process = self._require_process()
        process.wait_for(self._read_port, timeout, "listening")
        probe = try_connect(self._port, timeout_s=timeout)  # type: ignore[arg-type]
        if probe is None:
            raise SystemFailure(f"{self.spec.column}: listening on {self._port} but not answering")
        probe.close()

    def _read_port(self) -> bool:
        match = _READY_LINE.search(self._require_process().log_tail(50))
        if match:
            self._port = int(match.group(1))
        return match is not None

    def client(self) -> ThriftClient:
        return self.client_factory()()

    def client_factory(self) -> Callable[[], ThriftClient]:
        if self._port is None:
            raise SystemFailure(f"{self.spec.column}: not ready")
        return functools.partial(ThriftClient, self._port, self.scenario.load.request_timeout_s)

    def server_pids(self) -> list[int]:
        return [self._process.pid] if self._process is not None else []

    def stats(self) -> dict[str, Any]:
        if self._port is None or not self._require_process().alive():
            return {}
        client = ThriftClient(self._port, timeout_s=5)
        try:
            return client.stats()
        finally:
            client.close()

    def check_alive(self) -> None:
        self._require_process().check_alive()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
            self._port = None

    def _require_process(self) -> ServerProcess:
        if self._process is None:
            raise SystemFailure(f"{self.spec.column}: not started")
        return self._process


class PipeThriftSystem(ThriftSystem):
    """``pipe+thrift``: the pipe engine behind the Thrift server."""

    Options = PipeOptions
    mode = "pipe"
    computes = True

    def server_config(self) -> dict[str, Any]:
        return {"node": node_config(self)}
