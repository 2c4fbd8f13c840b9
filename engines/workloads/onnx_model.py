"""onnx: the user's own ONNX model, with its named inputs and outputs, on onnxruntime.

``workload: {name: onnx, model: model.onnx}`` reads the model's inputs and outputs (names,
dtypes, shapes) from the file. A first dimension that is symbolic in every input is the
batch dimension: requests travel without it and a batch is stacked along it; a model
without one runs each request alone. Requests are seeded random values (``seed``) or the
steps of a perf_analyzer input-data file (``input_data``, see :mod:`tensors`); clients
take the steps in turn. Relative paths are relative to the scenario file.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator, model_validator

from engines.workloads import Workload, WorkloadParams
from engines.workloads.runtimes import require
from engines.workloads.tensors import Tensors, TensorSpec, random_inputs, read_input_data


class Signature:
    """A model's inputs and outputs, and whether it has a batch dimension."""

    def __init__(self, inputs: list[TensorSpec], outputs: list[TensorSpec], batched: bool):
        self.inputs, self.outputs, self.batched = inputs, outputs, batched


@functools.lru_cache(maxsize=4)
def read_signature(path: Path, mtime_ns: int) -> Signature:
    """The signature of the model at ``path`` (``mtime_ns`` keys the cache to its version)."""
    onnx = require("onnx", "onnxruntime")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ValueError(f"not an ONNX model: {path}: {exc}") from None
    weights = {init.name for init in model.graph.initializer}
    graph_inputs = [value for value in model.graph.input if value.name not in weights]
    raw_inputs = [_dims(onnx, value) for value in graph_inputs]
    raw_outputs = [_dims(onnx, value) for value in model.graph.output]
    if not raw_inputs or not raw_outputs:
        raise ValueError(f"{path}: the model has no inputs or no outputs")
    batched = all(shape and shape[0] is None for _, _, shape in raw_inputs)

    def specs(raw: list[tuple[str, np.dtype, tuple[int | None, ...]]]) -> list[TensorSpec]:
        cut = 1 if batched else 0
        return [TensorSpec(name, dtype, shape[cut:]) for name, dtype, shape in raw]

    return Signature(specs(raw_inputs), specs(raw_outputs), batched)


def _dims(onnx: Any, value: Any) -> tuple[str, np.dtype, tuple[int | None, ...]]:
    if not value.type.HasField("tensor_type"):
        raise ValueError(f"{value.name!r} is not a tensor (sequences and maps are not supported)")
    tensor = value.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return value.name, dtype, shape


def signature_of(path: Path) -> Signature:
    return read_signature(path, path.stat().st_mtime_ns)


class OnnxParams(WorkloadParams):
    #: The ONNX model file.
    model: Path
    #: A perf_analyzer ``--input-data`` JSON file; default: seeded random inputs.
    input_data: Path | None = None
    #: Seeds the random inputs.
    seed: int = Field(0, ge=0)
    #: onnxruntime threads per instance; 0 = its default.
    threads: int = Field(0, ge=0)

    @field_validator("model", "input_data")
    @classmethod
    def _a_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @model_validator(mode="after")
    def _inputs_fit_the_model(self) -> OnnxParams:
        self.requests()  # raises ValueError: the scenario error names the file and the field
        return self

    def requests(self) -> list[Tensors]:
        return _requests(self.model, self.model.stat().st_mtime_ns, self.input_data, self.seed)


@functools.lru_cache(maxsize=4)
def _requests(model: Path, mtime_ns: int, input_data: Path | None, seed: int) -> list[Tensors]:
    inputs = read_signature(model, mtime_ns).inputs
    if input_data is None:
        return [random_inputs(inputs, seed)]
    return read_input_data(input_data, inputs)


class OnnxModel(Workload):
    Params = OnnxParams
    params: OnnxParams
    named: ClassVar[bool] = True
    paths: ClassVar[tuple[str, ...]] = ("model", "input_data")
    #: onnxruntime's float results change in the last bits with the batch size.
    tolerance = 1e-3

    def __init__(self, params: OnnxParams) -> None:
        super().__init__(params)
        self.signature = signature_of(params.model)
        self._session: Any = None
        self._prepared: dict[tuple[Any, ...], Tensors] = {}

    def setup(self) -> None:
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        if self.params.threads:
            options.intra_op_num_threads = self.params.threads
        self._session = ort.InferenceSession(
            str(self.params.model), options, providers=["CPUExecutionProvider"]
        )

    def requests(self) -> list[Tensors]:
        return self.params.requests()

    def make_request(self) -> Tensors:
        return self.requests()[0]

    def compute(self, batch: Sequence[Tensors]) -> list[Tensors]:
        assert self._session is not None, "setup() was not called"
        names = [spec.name for spec in self.signature.outputs]
        shapes = {tuple(array.shape for array in request.values()) for request in batch}
        if not self.signature.batched or len(shapes) > 1:
            return [self._run_one(names, request) for request in batch]
        feeds = {
            spec.name: np.stack([request[spec.name] for request in batch])
            for spec in self.signature.inputs
        }
        outputs = self._session.run(names, feeds)
        return [
            {name: np.asarray(output[row]) for name, output in zip(names, outputs, strict=True)}
            for row in range(len(batch))
        ]

    def _run_one(self, names: list[str], request: Tensors) -> Tensors:
        batched = self.signature.batched
        feeds = {name: array[None, ...] if batched else array for name, array in request.items()}
        outputs = self._session.run(names, feeds)
        return {
            name: np.asarray(output[0]) if batched else output
            for name, output in zip(names, outputs, strict=True)
        }

    def reply_without_compute(self, request: Tensors) -> Tensors:
        """Zeros shaped like the model's reply to a request of these shapes (computed once)."""
        key = tuple((name, array.shape) for name, array in request.items())
        if key not in self._prepared:
            reply = self.expected_reply(request)
            self._prepared[key] = {name: np.zeros_like(array) for name, array in reply.items()}
        return self._prepared[key]

    def expected_reply(self, request: Tensors) -> Tensors:
        if self._session is None:
            self.setup()
        return self.compute([request])[0]
