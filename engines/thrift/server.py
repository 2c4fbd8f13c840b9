"""The Thrift server process: hosts the pipe engine (``pipe+thrift``) or nothing (``thrift``).

Run by :mod:`engines.thrift.system` as ``python -m engines.thrift.server``, its JSON
configuration on stdin (a payload can exceed what one argv string may hold).
It binds 127.0.0.1 on a free port chosen by the kernel and prints ``READY <port>`` once it
listens, so the harness never races another process for a port.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from thrift.protocol.TBinaryProtocol import TBinaryProtocolAcceleratedFactory
from thrift.server.TServer import TThreadPoolServer
from thrift.transport.TSocket import TServerSocket
from thrift.transport.TTransport import TBufferedTransportFactory

from engines.pipe.engine import Pipe
from engines.thrift.gen.pipebench_rpc import Inference
from engines.thrift.gen.pipebench_rpc.ttypes import InferenceError, Tensor
from engines.thrift.wire import from_tensor, to_tensor
from engines.workloads import create_workload

READY = "READY"


class PipeHandler:
    """``pipe+thrift``: every request goes through the engine."""

    def __init__(self, node: dict[str, Any]) -> None:
        self._pipe = Pipe(node)

    def infer(self, request: Tensor) -> Tensor:
        try:
            return to_tensor(self._pipe(from_tensor(request)))
        except Exception as exc:
            raise InferenceError(message=f"{type(exc).__name__}: {exc}") from exc

    def ping(self) -> bool:
        return True

    def stats(self) -> str:
        return json.dumps(self._pipe.stats())


class NullHandler:
    """``thrift``: replies without computing, the RPC ceiling."""

    def __init__(self, workload: dict[str, Any]) -> None:
        self._workload = create_workload(workload["name"], workload.get("options", {}))

    def infer(self, request: Tensor) -> Tensor:
        return to_tensor(self._workload.reply_without_compute(from_tensor(request)))

    def ping(self) -> bool:
        return True

    def stats(self) -> str:
        return "{}"


def serve(config: dict[str, Any]) -> None:
    if config["mode"] == "pipe":
        from engines.pipe import workload_backend  # noqa: F401 - registers the backend

        handler: PipeHandler | NullHandler = PipeHandler(config["node"])
    else:
        handler = NullHandler(config["workload"])
    transport = TServerSocket(host="127.0.0.1", port=0)
    transport.listen()
    transport.listen = lambda: None  # serve() would listen again on a new port
    server = TThreadPoolServer(
        Inference.Processor(handler),
        transport,
        TBufferedTransportFactory(),
        TBinaryProtocolAcceleratedFactory(),
        daemon=True,
    )
    server.setNumThreads(config["threads"])
    port = transport.handle.getsockname()[1]
    print(f"{READY} {port}", flush=True)
    server.serve()


if __name__ == "__main__":
    serve(json.load(sys.stdin))
