"""Echo: the reply is the request, the seed's "Hello, World!" experiment."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.workloads import Workload, WorkloadParams


class EchoParams(WorkloadParams):
    #: Sent as UINT8 ASCII codes: Triton handles strings poorly (the seed's point).
    payload: str = "HelloWorld"


class Echo(Workload):
    Params = EchoParams

    def make_request(self) -> np.ndarray:
        return np.frombuffer(self.params.payload.encode(), dtype=np.uint8).copy()

    def compute(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(batch)
