"""A lean Triton HTTP client: the KServe v2 protocol with nothing in the way.

Why it exists: ``tritonclient.http`` costs this machine's CPU roughly 3-4x what Triton
spends serving an echo request (geventhttpclient switches into a gevent hub on every
receive, and each call rebuilds headers, JSON and a result object in Python), so with it
pipebench measured its own client more than Triton (``benchmarks/triton_client.py``).
This client speaks the same protocol (``POST v2/models/<m>/infer`` with the binary tensor
extension) over one keep-alive socket: the whole HTTP request is built once per request
tensor, a call is one ``sendall`` and the reads of one reply, and the reply is parsed
just enough to return the output tensor and to raise on an error.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import numpy as np
from tritonclient.utils import (
    deserialize_bytes_tensor,
    np_to_triton_dtype,
    serialize_byte_tensor,
    triton_to_np_dtype,
)

from engines.triton.client import scalars_back, with_batch

_HEAD_END = b"\r\n\r\n"


class TritonHttpError(RuntimeError):
    """Triton answered with an HTTP error status; the message is its error text."""


class LeanHttpClient:
    """One load worker's connection; used by one thread only."""

    def __init__(
        self,
        url: str,
        model: str,
        timeout_s: float,
        input_name: str = "INPUT",
        output_name: str = "OUTPUT",
        scalar_outputs: tuple[str, ...] = (),
    ) -> None:
        host, _, port = url.rpartition(":")
        self._address = (host, int(port))
        self._url = url
        self._model = model
        self._timeout_s = timeout_s
        self._input_name = input_name
        self._output_name = output_name
        self._scalars = scalar_outputs
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._request: Any = None
        self._message = b""
        self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._buffer = sock, bytearray()
        return sock

    def _prepare(self, request: np.ndarray | dict[str, np.ndarray]) -> None:
        """The whole HTTP message: an array is the input ``input_name`` and only
        ``output_name`` comes back; named arrays are the inputs and every output comes back."""
        named = request if isinstance(request, dict) else {self._input_name: request}
        inputs, chunks = [], []
        for name, array in named.items():
            batch = np.ascontiguousarray(with_batch(array))
            datatype, data = _binary(batch)
            inputs.append(
                {
                    "name": name,
                    "shape": list(batch.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(data)},
                }
            )
            chunks.append(data)
        body: dict[str, Any] = {"inputs": inputs}
        if isinstance(request, dict):
            body["parameters"] = {"binary_data_output": True}
        else:
            body["outputs"] = [{"name": self._output_name, "parameters": {"binary_data": True}}]
        header = json.dumps(body, separators=(",", ":")).encode()
        data = b"".join(chunks)
        head = (
            f"POST /v2/models/{self._model}/infer HTTP/1.1\r\n"
            f"Host: {self._url}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\n"
            f"Content-Length: {len(header) + len(data)}\r\n\r\n"
        )
        self._message = head.encode() + header + data
        self._request = request

    def call(self, request: np.ndarray | dict[str, np.ndarray]) -> Any:
        if request is not self._request:
            self._prepare(request)
        sock = self._sock or self._connect()
        try:
            sock.sendall(self._message)
            status, headers, body = self._read_reply(sock)
        except BaseException:
            self._drop()  # a late or partial reply must never be read as the next one
            raise
        if status != 200:
            raise TritonHttpError(f"HTTP {status}: {_error_text(body)}")
        return self._outputs(headers, body, named=isinstance(request, dict))

    def _read_reply(self, sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
        buffer = self._buffer
        while (end := buffer.find(_HEAD_END)) < 0:
            self._receive(sock)
        lines = buffer[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise TritonHttpError("chunked replies are not supported by the lean client")
        total = end + len(_HEAD_END) + int(headers.get("content-length", "0"))
        while len(buffer) < total:
            self._receive(sock)
        body = bytes(buffer[end + len(_HEAD_END) : total])
        del buffer[:total]
        if headers.get("connection", "").lower() == "close":
            self._drop()
        return status, headers, body

    def _receive(self, sock: socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("Triton closed the connection")
        self._buffer += chunk

    def _outputs(self, headers: dict[str, str], body: bytes, named: bool) -> Any:
        """``output_name``'s row, or every output's row by name (``named``)."""
        json_size = int(headers.get("inference-header-content-length", len(body)))
        reply = json.loads(body[:json_size])
        offset, found = json_size, {}
        for output in reply.get("outputs", []):
            size = output.get("parameters", {}).get("binary_data_size")
            raw = body[offset : offset + size] if size is not None else None
            found[output["name"]] = _tensor(output, raw)[0]
            offset += size or 0
        if named:
            return scalars_back(found, self._scalars)
        if self._output_name not in found:
            raise TritonHttpError(f"no output {self._output_name!r} in the reply")
        return found[self._output_name]

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._drop()


def _binary(batch: np.ndarray) -> tuple[str, bytes]:
    """A batch's Triton datatype and bytes (BYTES: 4-byte length + bytes per element, as
    tritonclient sends them)."""
    datatype = np_to_triton_dtype(batch.dtype)
    if datatype == "BYTES":
        serialized = serialize_byte_tensor(batch)
        return datatype, serialized.item() if serialized.size else b""
    return datatype, batch.tobytes()


def _tensor(output: dict[str, Any], raw: bytes | None) -> np.ndarray:
    shape, datatype = output["shape"], output["datatype"]
    if raw is None:  # the server sent JSON data after all
        return np.array(output["data"], dtype=triton_to_np_dtype(datatype)).reshape(shape)
    if datatype == "BYTES":
        return deserialize_bytes_tensor(raw).reshape(shape)
    return np.frombuffer(raw, dtype=triton_to_np_dtype(datatype)).reshape(shape)


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:200]))
    except (ValueError, AttributeError):
        return body[:200].decode("latin-1")
