"""Echo: the reply is the request, the seed's "Hello, World!" experiment."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from engines.workloads import Workload, WorkloadParams


class EchoParams(WorkloadParams):
    payload: str = "HelloWorld"
    #: ``uint8``: the payload's ASCII codes, as the seed sends it (Triton handles strings
    #: poorly). ``bytes``: one string element (Triton ``TYPE_STRING``, a numpy object array
    #: elsewhere), to measure that point.
    type: Literal["uint8", "bytes"] = "uint8"
    #: Server-side compute time per request (a sleep, so it holds no GIL): a known
    #: slow-down, to see a gate catch a regression (1 vs 3 ms is a TP50 regression).
    delay_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    #: Send exactly this many bytes: ``payload`` repeated and cut to length, so a large
    #: request needs no literal of that size in the scenario (e.g. 65536 for 64 KiB).
    payload_bytes: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _payload_to_repeat(self) -> EchoParams:
        if self.payload_bytes is not None and not self.payload:
            raise ValueError("payload_bytes needs a non-empty payload to repeat")
        return self

    def data(self) -> bytes:
        """The request's bytes."""
        data = self.payload.encode()
        if self.payload_bytes is None:
            return data
        repeats = -(-self.payload_bytes // len(data))
        return (data * repeats)[: self.payload_bytes]


class Echo(Workload):
    Params = EchoParams
    params: EchoParams

    def make_request(self) -> np.ndarray:
        data = self.params.data()
        if self.params.type == "bytes":
            return np.array([data], dtype=object)
        return np.frombuffer(data, dtype=np.uint8).copy()

    def compute(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.params.delay_ms:
            time.sleep(self.params.delay_ms * len(batch) / 1e3)
        return list(batch)
