"""The ResNet architecture as an ONNX graph, built with onnx's helper API (no exporter).

onnxruntime runs the graph on the CPU (the fastest runtime on this machine) and TensorRT
builds its engine from it, so both run the exact network of :mod:`resnet_arch`.
"""

from __future__ import annotations

from typing import Any

from engines.workloads.resnet_arch import BN_EPS, Weights, resnet

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 17


class OnnxOps:
    """Traces the architecture into ONNX nodes; values are tensor names."""

    def __init__(self, onnx: Any, weights: Weights) -> None:
        self._onnx = onnx
        self._weights = weights
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        self._count += 1
        output = f"{op.lower()}_{self._count}"
        self.nodes.append(self._onnx.helper.make_node(op, inputs, [output], **attributes))
        return output

    def _weight(self, name: str) -> str:
        self.initializers.append(self._onnx.numpy_helper.from_array(self._weights[name], name))
        return name

    def conv(self, x: str, name: str, cin: int, cout: int, kernel: int, stride: int) -> str:
        pad = kernel // 2
        return self._node(
            "Conv",
            [x, self._weight(f"{name}.weight")],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
        )

    def bn(self, x: str, name: str, channels: int) -> str:
        parts = ("weight", "bias", "running_mean", "running_var")
        inputs = [x, *(self._weight(f"{name}.{part}") for part in parts)]
        return self._node("BatchNormalization", inputs, epsilon=BN_EPS)

    def relu(self, x: str) -> str:
        return self._node("Relu", [x])

    def add(self, a: str, b: str) -> str:
        return self._node("Add", [a, b])

    def maxpool(self, x: str) -> str:
        return self._node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)

    def pool_fc(self, x: str, name: str, cin: int, classes: int) -> str:
        flat = self._node("Flatten", [self._node("GlobalAveragePool", [x])], axis=1)
        inputs = [flat, self._weight(f"{name}.weight"), self._weight(f"{name}.bias")]
        return self._node("Gemm", inputs, transB=1)


def build_onnx(onnx: Any, depth: int, weights: Weights) -> bytes:
    """The serialized model: ``input`` float32 [N, 3, 224, 224] -> ``logits`` [N, 1000]."""
    ops = OnnxOps(onnx, weights)
    resnet(ops, INPUT_NAME, depth)
    ops.nodes[-1].output[0] = OUTPUT_NAME  # the Gemm: give the graph's output its name
    helper, proto = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        ops.nodes,
        f"resnet{depth}",
        [helper.make_tensor_value_info(INPUT_NAME, proto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(OUTPUT_NAME, proto.FLOAT, ["N", 1000])],
        ops.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
