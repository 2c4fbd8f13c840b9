"""The Thrift server process: hosts an engine (``pipe+thrift``: the pipe engine;
``torchpipe+thrift``: the real torchpipe core) or nothing (``thrift``).

Run by :mod:`engines.thrift.system` as ``python -m engines.thrift.server``, its JSON
configuration on stdin (a payload can exceed what one argv string may hold).
It binds the configuration's ``host`` (the System's: loopback, or a cluster node's address)
on a free port chosen by the kernel and prints ``READY <port>`` once it listens, so the
harness never races another process for a port.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from thrift.server.TServer import TThreadPoolServer
from thrift.transport.TSocket import TServerSocket
from thrift.transport.TTransport import TBufferedTransportFactory

from engines.pipe.engine import Pipe
from engines.thrift.gen.pipebench_rpc import Inference
from engines.thrift.gen.pipebench_rpc.ttypes import InferenceError, Tensor
from engines.thrift.wire import ProtocolFactory, from_named, from_tensor, to_named, to_tensor
from engines.workloads import create_workload

READY = "READY"


class EngineHandler:
    """``pipe+thrift`` and ``torchpipe+thrift``: every request goes through the engine, so
    the two differ only in the engine that ``call`` reaches."""

    def __init__(self, call: Callable[[Any], Any], stats: Callable[[], dict[str, Any]] = dict):
        self._call = call
        self._stats = stats

    def infer(self, request: Tensor) -> Tensor:
        try:
            return to_tensor(self._call(from_tensor(request)))
        except Exception as exc:
            raise InferenceError(message=f"{type(exc).__name__}: {exc}") from exc

    def infer_named(self, inputs: list[Tensor]) -> list[Tensor]:
        try:
            return to_named(self._call(from_named(inputs)))
        except Exception as exc:
            raise InferenceError(message=f"{type(exc).__name__}: {exc}") from exc

    def ping(self) -> bool:
        return True

    def stats(self) -> str:
        return json.dumps(self._stats())


class NullHandler:
    """``thrift``: replies without computing, the RPC ceiling."""

    def __init__(self, workload: dict[str, Any]) -> None:
        self._workload = create_workload(workload["name"], workload.get("options", {}))

    def infer(self, request: Tensor) -> Tensor:
        return to_tensor(self._workload.reply_without_compute(from_tensor(request)))

    def infer_named(self, inputs: list[Tensor]) -> list[Tensor]:
        return to_named(self._workload.reply_without_compute(from_named(inputs)))

    def ping(self) -> bool:
        return True

    def stats(self) -> str:
        return "{}"


def make_handler(config: dict[str, Any]) -> EngineHandler | NullHandler:
    """The handler of ``config["mode"]``: ``pipe``, ``torchpipe`` or ``null``."""
    if config["mode"] == "pipe":
        from engines.pipe import workload_backend  # noqa: F401 - registers the backend

        pipe = Pipe(config["node"])
        return EngineHandler(pipe.__call__, pipe.stats)  # bound: no call through the type slot
    if config["mode"] == "torchpipe":
        from engines.torchpipe.core import core_call

        return EngineHandler(core_call(**config["core"]))
    return NullHandler(config["workload"])


def serve(config: dict[str, Any]) -> None:
    handler = make_handler(config)
    transport = TServerSocket(host=config["host"], port=0)
    transport.listen()
    transport.listen = lambda: None  # serve() would listen again on a new port
    server = TThreadPoolServer(
        Inference.Processor(handler),
        transport,
        TBufferedTransportFactory(),
        ProtocolFactory(),
        daemon=True,
    )
    server.setNumThreads(config["threads"])
    port = transport.handle.getsockname()[1]
    print(f"{READY} {port}", flush=True)
    server.serve()


if __name__ == "__main__":
    serve(json.load(sys.stdin))
