"""resnet18 / resnet50: the real architectures with random (seeded) weights.

The client sends one 224x224x3 uint8 image and gets its 1000 logits (float32) back. The
model runs on the runtime the scenario names (``onnxruntime`` on the CPU by default, the
fastest here; ``torch``; ``tensorrt`` on a GPU). Every instance of every system derives
its weights from the same ``seed``, so all replies agree and can be checked against the
harness's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from engines.workloads import Workload, WorkloadParams
from engines.workloads.resnet_arch import CLASSES, INPUT_SIZE, to_nchw
from engines.workloads.runtimes import (
    Device,
    Runner,
    RuntimeName,
    config_problem,
    make_runner,
    unavailable,
)


class ResNetParams(WorkloadParams):
    runtime: RuntimeName = "onnxruntime"
    device: Device = "cpu"
    #: Seeds the weights (and the client's image): equal seeds give equal replies.
    seed: int = Field(0, ge=0)
    #: Threads per instance; 0 = the runtime's default.
    threads: int = Field(0, ge=0)
    #: Largest batch a TensorRT engine is built for; bigger batches run in chunks.
    trt_max_batch: int = Field(8, gt=0)

    @model_validator(mode="after")
    def _runtime_possible(self) -> ResNetParams:
        if problem := config_problem(self.runtime, self.device):
            raise ValueError(problem)
        return self


class ResNet(Workload):
    Params = ResNetParams
    params: ResNetParams
    depth: ClassVar[int]
    _runner: Runner | None = None

    def __init__(self, params: ResNetParams) -> None:
        super().__init__(params)
        # Batch sizes and kernels change the last bits of float32 logits; GPUs also compute
        # convolutions in TF32 (torch's and TensorRT's default), about 3 decimal digits.
        self.tolerance = 1e-2 if params.device == "cuda" else 1e-3
        # The pure-RPC systems' reply: prepared once, the size and type of real logits.
        self._prepared = np.zeros(CLASSES, dtype=np.float32)

    def unavailable(self) -> str | None:
        p = self.params
        return unavailable(p.runtime, p.device)

    def setup(self) -> None:
        p = self.params
        self._runner = make_runner(
            p.runtime, p.device, self.depth, p.seed, p.threads, p.trt_max_batch
        )

    def make_request(self) -> np.ndarray:
        rng = np.random.default_rng(self.params.seed)
        return rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)

    def compute(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        assert self._runner is not None, "setup() was not called"
        return list(self._runner(to_nchw(np.stack(batch))))

    def reply_without_compute(self, request: np.ndarray) -> np.ndarray:
        return self._prepared

    def expected_reply(self, request: np.ndarray) -> np.ndarray:
        if self._runner is None:
            self.setup()
        return self.compute([request])[0]


class ResNet18(ResNet):
    depth = 18


class ResNet50(ResNet):
    depth = 50
