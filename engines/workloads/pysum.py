"""sum: pure-Python addition of 1..n, the seed's GIL-bound CPU backend.

A bytecode loop rather than ``sum(range(...))``: the seed's point is a backend that holds
the GIL the whole time it computes, so threads cannot run it in parallel but processes can.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from engines.workloads import Workload, WorkloadParams


class SumParams(WorkloadParams):
    n: int = Field(100_000, gt=0)


class PySum(Workload):
    """Request: ``[n]`` as int64; reply: ``[1 + 2 + ... + n]``."""

    Params = SumParams
    params: SumParams

    def make_request(self) -> np.ndarray:
        return np.array([self.params.n], dtype=np.int64)

    def compute(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.array([_add_up_to(int(request[0]))], dtype=np.int64) for request in batch]

    def reply_without_compute(self, request: np.ndarray) -> np.ndarray:
        return self.expected_reply(request)

    def expected_reply(self, request: np.ndarray) -> np.ndarray:
        n = int(request[0])
        return np.array([n * (n + 1) // 2], dtype=np.int64)


def _add_up_to(n: int) -> int:
    total = 0
    for i in range(1, n + 1):
        total += i
    return total
