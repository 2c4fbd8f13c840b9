"""ResNet-18/50 written once, traced by every runtime: no torchvision, nothing downloaded.

The architecture is one function over an :class:`Ops` object. Tracing it with
:class:`WeightMaker` creates the weights (random, from a seed, named like torchvision's
``state_dict``); tracing it with the ONNX builder or the torch runner turns the same
layers into a graph or a computation. So every runtime runs the same network with the same
weights, and the parameter counts match torchvision's (11,689,512 and 25,557,032).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import numpy as np

T = TypeVar("T")
Weights = dict[str, np.ndarray]

INPUT_SIZE = 224
CLASSES = 1000
BN_EPS = 1e-5
#: torchvision's running statistics; they are buffers, not parameters.
BUFFER_SUFFIXES = (".running_mean", ".running_var")


class Ops(Protocol[T]):
    """The handful of layers a ResNet needs; ``T`` is whatever a runtime passes along."""

    def conv(self, x: T, name: str, cin: int, cout: int, kernel: int, stride: int) -> T: ...

    def bn(self, x: T, name: str, channels: int) -> T: ...

    def relu(self, x: T) -> T: ...

    def add(self, a: T, b: T) -> T: ...

    def maxpool(self, x: T) -> T: ...

    def pool_fc(self, x: T, name: str, cin: int, classes: int) -> T: ...


def _basic(ops: Ops[T], x: T, name: str, cin: int, width: int, stride: int) -> tuple[T, int]:
    out = ops.relu(
        ops.bn(ops.conv(x, f"{name}.conv1", cin, width, 3, stride), f"{name}.bn1", width)
    )
    out = ops.bn(ops.conv(out, f"{name}.conv2", width, width, 3, 1), f"{name}.bn2", width)
    return _residual(ops, x, out, name, cin, width, stride), width


def _bottleneck(ops: Ops[T], x: T, name: str, cin: int, width: int, stride: int) -> tuple[T, int]:
    cout = 4 * width
    out = ops.relu(ops.bn(ops.conv(x, f"{name}.conv1", cin, width, 1, 1), f"{name}.bn1", width))
    # torchvision's "v1.5": the stride sits on the 3x3 convolution.
    conv2 = ops.conv(out, f"{name}.conv2", width, width, 3, stride)
    out = ops.relu(ops.bn(conv2, f"{name}.bn2", width))
    out = ops.bn(ops.conv(out, f"{name}.conv3", width, cout, 1, 1), f"{name}.bn3", cout)
    return _residual(ops, x, out, name, cin, cout, stride), cout


def _residual(ops: Ops[T], x: T, out: T, name: str, cin: int, cout: int, stride: int) -> T:
    identity = x
    if stride != 1 or cin != cout:
        down = ops.conv(x, f"{name}.downsample.0", cin, cout, 1, stride)
        identity = ops.bn(down, f"{name}.downsample.1", cout)
    return ops.relu(ops.add(out, identity))


Block = Callable[..., tuple[T, int]]
DEPTHS: dict[int, tuple[Block, list[int]]] = {
    18: (_basic, [2, 2, 2, 2]),
    50: (_bottleneck, [3, 4, 6, 3]),
}


def resnet(ops: Ops[T], x: T, depth: int) -> T:
    """ResNet-``depth`` over NCHW float input in [0, 1]; returns the 1000 logits."""
    block, blocks_per_stage = DEPTHS[depth]
    x = ops.relu(ops.bn(ops.conv(x, "conv1", 3, 64, 7, 2), "bn1", 64))
    x = ops.maxpool(x)
    cin = 64
    for stage, (width, blocks) in enumerate(
        zip((64, 128, 256, 512), blocks_per_stage, strict=True)
    ):
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            x, cin = block(ops, x, f"layer{stage + 1}.{index}", cin, width, stride)
    return ops.pool_fc(x, "fc", cin, CLASSES)


class WeightMaker(Generic[T]):
    """Traces the architecture to create its weights, in order, from one seeded generator.

    Convolutions get He-normal weights (torchvision's ``fan_out`` rule); batch norms get a
    random scale and shift around torchvision's defaults, so the replies are not trivially
    constant and a corrupted reply is noticed.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.weights: Weights = {}

    def _normal(self, shape: tuple[int, ...], std: float, mean: float = 0.0) -> np.ndarray:
        values = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        return values + np.float32(mean)

    def conv(self, x: None, name: str, cin: int, cout: int, kernel: int, stride: int) -> None:
        std = float(np.sqrt(2.0 / (cout * kernel * kernel)))
        self.weights[f"{name}.weight"] = self._normal((cout, cin, kernel, kernel), std)

    def bn(self, x: None, name: str, channels: int) -> None:
        self.weights[f"{name}.weight"] = self._normal((channels,), 0.1, mean=0.5)
        self.weights[f"{name}.bias"] = self._normal((channels,), 0.1)
        self.weights[f"{name}.running_mean"] = self._normal((channels,), 0.1)
        self.weights[f"{name}.running_var"] = np.abs(self._normal((channels,), 0.1, mean=1.0))

    def relu(self, x: None) -> None:
        return None

    def add(self, a: None, b: None) -> None:
        return None

    def maxpool(self, x: None) -> None:
        return None

    def pool_fc(self, x: None, name: str, cin: int, classes: int) -> None:
        bound = float(1 / np.sqrt(cin))
        shape = (classes, cin)
        self.weights[f"{name}.weight"] = self.rng.uniform(-bound, bound, shape).astype(np.float32)
        self.weights[f"{name}.bias"] = self.rng.uniform(-bound, bound, classes).astype(np.float32)


def make_weights(depth: int, seed: int) -> Weights:
    maker: WeightMaker[None] = WeightMaker(seed)
    resnet(maker, None, depth)
    return maker.weights


def parameter_count(weights: Weights) -> int:
    """Trainable parameters as torchvision counts them (running statistics excluded)."""
    return sum(array.size for name, array in weights.items() if not name.endswith(BUFFER_SUFFIXES))


def to_nchw(batch: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> float32 NCHW in [0, 1], the network's input."""
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)
