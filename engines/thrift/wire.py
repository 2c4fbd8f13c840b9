"""numpy arrays <-> the IDL's ``Tensor``, shared by the Thrift server and client.

Numeric arrays travel as their C-order bytes. Arrays of strings (numpy ``object`` arrays
of ``bytes``, the echo workload's ``bytes`` type) travel as dtype ``bytes`` in Triton's
own BYTES layout: each element as a 4-byte little-endian length, then its bytes.
"""

from __future__ import annotations

import struct

import numpy as np

from engines.thrift.gen.pipebench_rpc.ttypes import Tensor

BYTES = "bytes"
_LENGTH = struct.Struct("<I")


def to_tensor(array: np.ndarray) -> Tensor:
    if array.dtype == object:
        items = [bytes(item) for item in array.reshape(-1)]
        data = b"".join(_LENGTH.pack(len(item)) + item for item in items)
        return Tensor(dtype=BYTES, shape=list(array.shape), data=data)
    array = np.ascontiguousarray(array)
    return Tensor(dtype=array.dtype.name, shape=list(array.shape), data=array.tobytes())


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
