"""numpy arrays <-> the IDL's ``Tensor``, and the protocol that carries them, shared by the
Thrift server and client.

Numeric arrays travel as their C-order bytes. Arrays of strings (numpy ``object`` arrays
of ``bytes``, the echo workload's ``bytes`` type) travel as dtype ``bytes`` in Triton's
own BYTES layout: each element as a 4-byte little-endian length, then its bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from thrift.protocol.fastbinary import encode_binary
from thrift.protocol.TBinaryProtocol import (
    TBinaryProtocol,
    TBinaryProtocolAccelerated,
    TBinaryProtocolAcceleratedFactory,
)
from thrift.transport.TTransport import TMemoryBuffer

from engines.thrift.gen.pipebench_rpc.ttypes import Tensor

BYTES = "bytes"
_LENGTH = struct.Struct("<I")
#: dtype -> its name: numpy computes ``dtype.name`` in Python on every access (~1 µs, a third
#: of this conversion), and every reply pays it in the server and every request in the client.
_NAMES: dict[np.dtype, str] = {}


def to_tensor(array: np.ndarray) -> Tensor:
    dtype = array.dtype
    if dtype.hasobject:
        items = [bytes(item) for item in array.reshape(-1)]
        data = b"".join(_LENGTH.pack(len(item)) + item for item in items)
        return Tensor(dtype=BYTES, shape=list(array.shape), data=data)
    name = _NAMES.get(dtype) or _NAMES.setdefault(dtype, dtype.name)
    return Tensor(dtype=name, shape=list(array.shape), data=array.tobytes(order="C"))


def from_tensor(tensor: Tensor) -> np.ndarray:
    if tensor.dtype == BYTES:
        items, offset, data = [], 0, tensor.data
        while offset < len(data):
            (length,) = _LENGTH.unpack_from(data, offset)
            offset += _LENGTH.size
            items.append(data[offset : offset + length])
            offset += length
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array.reshape(tensor.shape)
    return np.frombuffer(tensor.data, dtype=np.dtype(tensor.dtype)).reshape(tensor.shape)


def to_named(tensors: dict[str, np.ndarray]) -> list[Tensor]:
    """Named arrays (a multi-tensor request or reply) as ``infer_named``'s list."""
    named = []
    for name, array in tensors.items():
        tensor = to_tensor(array)
        tensor.name = name
        named.append(tensor)
    return named


def from_named(tensors: list[Tensor]) -> dict[str, np.ndarray]:
    return {str(tensor.name): from_tensor(tensor) for tensor in tensors}


#: Thrift's C encoder (fastbinary) appends a binary field byte by byte: ~0.7 ns a byte, 44 µs
#: for 64 KiB, once in the client and once in the server, where a copy takes ~3 µs. A message
#: carrying at least this many payload bytes is written by Thrift's Python writer instead
#: (a fixed ~15 µs, then one copy); the bytes on the wire are the same.
LARGE_PAYLOAD = 16 * 1024


def payload_bytes(message: Any) -> int:
    """The tensor bytes an ``infer`` or ``infer_named`` argument or result struct carries
    (0 for the others)."""
    found = (
        getattr(message, "request", None)
        or getattr(message, "inputs", None)
        or getattr(message, "success", None)
    )
    tensors = found if isinstance(found, list) else [found]
    return sum(len(t.data) for t in tensors if isinstance(t, Tensor) and t.data)


def _encode(message: Any, spec: list[Any]) -> bytes:
    if payload_bytes(message) < LARGE_PAYLOAD:
        return encode_binary(message, spec)
    out = TMemoryBuffer()
    message.write(TBinaryProtocol(out))
    return out.getvalue()


class Protocol(TBinaryProtocolAccelerated):
    """The binary protocol, C-accelerated except where a large payload makes C slower."""

    def __init__(self, trans: Any) -> None:
        super().__init__(trans)
        self._fast_encode = _encode


class ProtocolFactory(TBinaryProtocolAcceleratedFactory):
    def getProtocol(self, trans: Any) -> Protocol:
        return Protocol(trans)
