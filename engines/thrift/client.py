"""The Thrift client each load worker owns: one connection, one prepared request."""

from __future__ import annotations

import json
import socket
from typing import Any

import numpy as np
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport, TTransportException

from engines.thrift.gen.pipebench_rpc import Inference
from engines.thrift.wire import Protocol, from_named, from_tensor, to_named, to_tensor


class ThriftClient:
    def __init__(self, port: int, timeout_s: float, host: str = "127.0.0.1") -> None:
        socket_ = TSocket(host, port)
        socket_.setTimeout(timeout_s * 1e3)
        self._transport = TBufferedTransport(socket_)
        self._rpc = Inference.Client(Protocol(self._transport))
        self._transport.open()
        socket_.handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, request: np.ndarray | dict[str, np.ndarray]) -> Any:
        """One request: an array (``infer``), or named arrays (``infer_named``)."""
        if isinstance(request, dict):
            return from_named(self._rpc.infer_named(to_named(request)))
        return from_tensor(self._rpc.infer(to_tensor(request)))

    def ping(self) -> bool:
        return self._rpc.ping()

    def stats(self) -> dict[str, Any]:
        return json.loads(self._rpc.stats())

    def close(self) -> None:
        self._transport.close()


def try_connect(port: int, timeout_s: float, host: str = "127.0.0.1") -> ThriftClient | None:
    """A connected client if the server answers ``ping``, else ``None``."""
    try:
        client = ThriftClient(port, timeout_s, host)
    except TTransportException:
        return None
    try:
        client.ping()
    except (TTransportException, OSError):
        client.close()
        return None
    return client
