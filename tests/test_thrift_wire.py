"""The Thrift wire: tensors round-trip, and the protocol that bypasses Thrift's C encoder for
large payloads writes exactly the bytes that encoder writes."""

from __future__ import annotations

import numpy as np
import pytest
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.transport.TTransport import TMemoryBuffer

from engines.thrift.gen.pipebench_rpc import Inference
from engines.thrift.wire import LARGE_PAYLOAD, Protocol, from_tensor, payload_bytes, to_tensor
from engines.workloads import create_workload

SIZES = [1, 10, LARGE_PAYLOAD - 1, LARGE_PAYLOAD, 65536, 1 << 20]


def _written(protocol: type, message: object) -> bytes:
    out = TMemoryBuffer()
    message.write(protocol(out))  # type: ignore[attr-defined]
    return out.getvalue()


@pytest.mark.parametrize("size", SIZES)
def test_protocol_writes_the_c_encoders_bytes(size):
    tensor = to_tensor(create_workload("echo", {"payload_bytes": size}).make_request())
    for message in (Inference.infer_args(request=tensor), Inference.infer_result(success=tensor)):
        assert payload_bytes(message) == size
        assert _written(Protocol, message) == _written(TBinaryProtocolAccelerated, message)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["uint8", "bytes"])
def test_a_request_round_trips_through_the_protocol(size, kind):
    request = create_workload("echo", {"payload_bytes": size, "type": kind}).make_request()
    wire = _written(Protocol, Inference.infer_args(request=to_tensor(request)))
    decoded = Inference.infer_args()
    decoded.read(Protocol(TMemoryBuffer(wire)))
    reply = from_tensor(decoded.request)
    assert reply.dtype == request.dtype and reply.shape == request.shape
    assert reply.reshape(-1).tolist() == request.reshape(-1).tolist()


def test_numeric_tensors_keep_dtype_and_shape():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    back = from_tensor(to_tensor(array))
    assert back.dtype == np.float32 and back.shape == (2, 3, 4)
    assert np.array_equal(back, array)


def test_messages_without_a_tensor_carry_no_payload():
    assert payload_bytes(Inference.ping_result(success=True)) == 0
    assert payload_bytes(Inference.infer_result()) == 0


def test_a_non_contiguous_array_travels_in_c_order():
    array = np.arange(12, dtype=np.int64).reshape(3, 4).T  # Fortran-ordered view
    back = from_tensor(to_tensor(array))
    assert back.shape == (4, 3) and np.array_equal(back, array)
