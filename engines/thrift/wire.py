"""numpy arrays <-> the IDL's ``Tensor``, shared by the Thrift server and client."""

from __future__ import annotations

import numpy as np

from engines.thrift.gen.pipebench_rpc.ttypes import Tensor


def to_tensor(array: np.ndarray) -> Tensor:
    array = np.ascontiguousarray(array)
    return Tensor(dtype=array.dtype.name, shape=list(array.shape), data=array.tobytes())


def from_tensor(tensor: Tensor) -> np.ndarray:
    return np.frombuffer(tensor.data, dtype=np.dtype(tensor.dtype)).reshape(tensor.shape)
