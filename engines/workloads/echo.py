"""Echo: the reply is the request, the seed's "Hello, World!" experiment."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

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


class Echo(Workload):
    Params = EchoParams
    params: EchoParams

    def make_request(self) -> np.ndarray:
        data = self.params.payload.encode()
        if self.params.type == "bytes":
            return np.array([data], dtype=object)
        return np.frombuffer(data, dtype=np.uint8).copy()

    def compute(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.params.delay_ms:
            time.sleep(self.params.delay_ms * len(batch) / 1e3)
        return list(batch)
