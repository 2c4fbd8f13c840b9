"""Named tensors: a model's inputs and outputs, and perf_analyzer's input-data JSON.

A request of the ``onnx`` workload is a ``dict`` of named arrays (no batch dimension),
and so is its reply. Its inputs come either from a seeded random generator or from a
perf_analyzer ``--input-data`` file, the format Triton's users already have::

    {"data": [{"a": [1, 2, 3, 4],                                  # flat content
               "b": {"content": [0.5, 1.5], "shape": [2]},         # content and shape
               "c": {"b64": "AAAAPw==", "shape": [1]}},            # raw bytes, base64
              {...}]}                                              # more steps

Each step of ``data`` is one request. Shapes leave out the batch dimension, as
perf_analyzer's do. Every mistake is a :class:`ValueError` naming where in the file it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: A request or reply of a multi-tensor workload: tensor name -> array.
Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: its name, dtype and shape (without the batch
    dimension when the model batches); ``None`` where a dimension is symbolic."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.name} [{dims}]"

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape, strict=True)
        )


def random_inputs(inputs: list[TensorSpec], seed: int) -> Tensors:
    """One seeded request: normal floats, booleans, small non-negative integers (0..9, so
    that an index input stays in range). A symbolic dimension has no size to draw."""
    rng = np.random.default_rng(seed)
    request: Tensors = {}
    for spec in inputs:
        if any(d is None for d in spec.shape):
            raise ValueError(
                f"input {spec.name!r} is {spec.describe()}: a symbolic dimension other than "
                "the batch has no size to draw: give input_data with its shape"
            )
        shape = tuple(d for d in spec.shape if d is not None)
        kind = spec.dtype.kind
        if kind == "f":
            request[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif kind == "b":
            request[spec.name] = rng.integers(0, 2, shape).astype(bool)
        elif kind in "iu":
            request[spec.name] = rng.integers(0, 10, shape).astype(spec.dtype)
        else:
            raise ValueError(
                f"input {spec.name!r} is {spec.dtype.name}: random values cannot be drawn "
                "for it: give input_data"
            )
    return request


def read_input_data(path: Path, inputs: list[TensorSpec]) -> list[Tensors]:
    """The steps of a perf_analyzer input-data file, checked against the model's inputs."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON file: {exc}") from None
    if not isinstance(document, dict) or set(document) != {"data"}:
        keys = ", ".join(map(str, document)) if isinstance(document, dict) else "none"
        raise ValueError(f'{path}: expected {{"data": [...]}}, the only key (found: {keys})')
    steps = document["data"]
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"{path}: data: expected a non-empty list of steps")
    by_name = {spec.name: spec for spec in inputs}
    requests = []
    for index, step in enumerate(steps):
        where = f"{path}: data[{index}]"
        if isinstance(step, list):
            raise ValueError(f"{where}: sequences (lists of steps) are not supported")
        if not isinstance(step, dict):
            raise ValueError(f"{where}: expected a mapping of tensor name -> value")
        unknown = sorted(set(step) - set(by_name))
        if unknown:
            raise ValueError(
                f"{where}: unknown tensor {unknown[0]!r} (the model's inputs: {', '.join(by_name)})"
            )
        missing = [name for name in by_name if name not in step]
        if missing:
            raise ValueError(f"{where}: no value for input {missing[0]!r}")
        requests.append(
            {name: _tensor(step[name], by_name[name], f"{where}.{name}") for name in by_name}
        )
    return requests


def _tensor(value: Any, spec: TensorSpec, where: str) -> np.ndarray:
    """One tensor of a step: a flat list, ``{content, shape}`` or ``{b64, shape}``."""
    if isinstance(value, list):
        value = {"content": value}
    if not isinstance(value, dict) or len({"content", "b64"} & set(value)) != 1:
        raise ValueError(f"{where}: expected a list, {{content, shape}} or {{b64, shape}}")
    extra = sorted(set(value) - {"content", "b64", "shape"})
    if extra:
        raise ValueError(f"{where}: unknown key {extra[0]!r} (valid: content, b64, shape)")
    shape = _shape(value.get("shape"), spec, where)
    if "b64" in value:
        try:
            raw = base64.b64decode(str(value["b64"]), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{where}.b64: not base64: {exc}") from None
        want = math.prod(shape) * spec.dtype.itemsize
        if len(raw) != want:
            raise ValueError(
                f"{where}.b64: {len(raw)} bytes, but {spec.dtype.name} {list(shape)} takes {want}"
            )
        return np.frombuffer(raw, dtype=spec.dtype).reshape(shape).copy()
    return _content(value["content"], spec, shape, f"{where}.content")


def _shape(given: Any, spec: TensorSpec, where: str) -> tuple[int, ...]:
    if given is None:
        if any(d is None for d in spec.shape):
            raise ValueError(
                f"{where}: the model's shape is {spec.describe()}: give shape for the "
                "symbolic dimensions"
            )
        return tuple(d for d in spec.shape if d is not None)
    if not isinstance(given, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in given
    ):
        raise ValueError(f"{where}.shape: expected a list of non-negative integers")
    shape = tuple(given)
    if not spec.accepts(shape):
        raise ValueError(
            f"{where}.shape: {list(shape)} does not fit the model's input {spec.describe()}"
            " (shapes leave out the batch dimension)"
        )
    return shape


def _content(content: Any, spec: TensorSpec, shape: tuple[int, ...], where: str) -> np.ndarray:
    if spec.dtype.kind not in "biuf":
        raise ValueError(f"{where}: {spec.dtype.name} inputs are not supported")
    try:
        parsed = np.asarray(content)
    except ValueError as exc:
        raise ValueError(f"{where}: not a list of numbers: {exc}") from None
    if parsed.dtype.kind not in "biuf" and parsed.size:
        raise ValueError(f"{where}: not a list of numbers")
    if parsed.size != math.prod(shape):
        raise ValueError(
            f"{where}: {parsed.size} values, but shape {list(shape)} holds {math.prod(shape)}"
        )
    array = parsed.astype(spec.dtype).reshape(shape)
    if spec.dtype.kind in "biu" and not np.array_equal(array, parsed.reshape(shape)):
        raise ValueError(f"{where}: values that are not {spec.dtype.name}")
    return array
