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
    #: The ONNX model file. Without it (a model only a remote Triton has), ``input_data``
    #: gives the requests, the server's metadata their dtypes, and replies are compared
    #: across the systems instead of with onnxruntime's.
    model: Path | None = None
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
        if self.model is None:
            if self.input_data is None:
                raise ValueError(
                    "give model (the ONNX file) or, for a model only a remote Triton has, "
                    "input_data"
                )
            return self
        self.requests(signature_of(self.model).inputs)  # a ValueError names file and place
        return self

    def requests(self, inputs: list[TensorSpec]) -> list[Tensors]:
        return _requests(tuple(inputs), self.input_data, self.seed, self._version())

    def _version(self) -> tuple[int, ...]:
        """The files' modification times: the cached requests follow their edits."""
        files = (self.model, self.input_data)
        return tuple(path.stat().st_mtime_ns for path in files if path is not None)


@functools.lru_cache(maxsize=4)
def _requests(
    inputs: tuple[TensorSpec, ...], input_data: Path | None, seed: int, version: tuple[int, ...]
) -> list[Tensors]:
    if input_data is None:
        return [random_inputs(list(inputs), seed)]
    return read_input_data(input_data, list(inputs))


class OnnxModel(Workload):
    Params = OnnxParams
    params: OnnxParams
    named: ClassVar[bool] = True
    paths: ClassVar[tuple[str, ...]] = ("model", "input_data")
    #: onnxruntime's float results change in the last bits with the batch size.
    tolerance = 1e-3

    def __init__(self, params: OnnxParams) -> None:
        super().__init__(params)
        #: None until a remote server declares it, for a model the harness does not have.
        self.signature = signature_of(params.model) if params.model is not None else None
        self._session: Any = None
        self._prepared: dict[tuple[Any, ...], Tensors] = {}

    @property
    def computable(self) -> bool:
        return self.params.model is not None

    @property
    def input_data_file(self) -> Path | None:
        return self.params.input_data

    def declare_tensors(self, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        """Adopt the deployment's inputs (no local model), or check they are the model's."""
        if self.signature is None:
            self.signature = Signature(inputs, outputs, batched=True)
            self.requests()  # the input-data file must fit them: a ValueError says where
            return
        ours = {spec.name: spec.dtype for spec in self.signature.inputs}
        theirs = {spec.name: spec.dtype for spec in inputs}
        if ours != theirs:
            raise ValueError(
                f"the deployment's inputs ({_describe(theirs)}) are not those of "
                f"{self.params.model} ({_describe(ours)})"
            )

    def setup(self) -> None:
        assert self.params.model is not None, "no local model to run"
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        if self.params.threads:
            options.intra_op_num_threads = self.params.threads
        self._session = ort.InferenceSession(
            str(self.params.model), options, providers=["CPUExecutionProvider"]
        )

    def requests(self) -> list[Tensors]:
        if self.signature is None:
            raise ValueError(
                f"{self.params.input_data}: the model's inputs are not known yet "
                "(no model file, and no remote server has declared them)"
            )
        return self.params.requests(self.signature.inputs)

    def make_request(self) -> Tensors:
        return self.requests()[0]

    def compute(self, batch: Sequence[Tensors]) -> list[Tensors]:
        assert self._session is not None and self.signature is not None, "setup() not called"
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
        assert self.signature is not None
        batched = self.signature.batched
        feeds = {name: array[None, ...] if batched else array for name, array in request.items()}
        outputs = self._session.run(names, feeds)
        return {
            name: np.asarray(output[0]) if batched else output
            for name, output in zip(names, outputs, strict=True)
        }

    def reply_without_compute(self, request: Tensors) -> Tensors:
        """Zeros shaped like the model's reply to a request of these shapes (computed once).
        Without a model file only the null system (the client ceiling) asks: it gets the
        request back, having nothing to shape a reply by."""
        if not self.computable:
            return request
        key = tuple((name, array.shape) for name, array in request.items())
        if key not in self._prepared:
            reply = self.expected_reply(request)
            self._prepared[key] = {name: np.zeros_like(array) for name, array in reply.items()}
        return self._prepared[key]

    def expected_reply(self, request: Tensors) -> Tensors:
        if self._session is None:
            self.setup()
        return self.compute([request])[0]


def _describe(tensors: dict[str, np.dtype]) -> str:
    return ", ".join(f"{name} {dtype.name}" for name, dtype in sorted(tensors.items()))
