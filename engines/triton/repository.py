"""A private model repository and backend directory for one tritonserver launch.

Nothing is written into site-packages or the project: the model's ``config.pbtxt`` is
generated from the scenario (``instance_group``, ``max_batch_size``, ``dynamic_batching``),
``model.py`` is the project's ``model_repository/pipebench/1/model.py``, and the Python
backend directory is a set of symlinks into the ``nvidia-pytriton`` wheel.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from engines.workloads import Workload
from harness.errors import InputError
from harness.scenario import Scenario

MODEL_NAME = "pipebench"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_SOURCE = PROJECT_ROOT / "model_repository" / MODEL_NAME / "1" / "model.py"

_TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    # numpy object arrays of bytes: Triton's string type (the echo workload's ``bytes``).
    "object": "TYPE_STRING",
}


def pytriton_tree() -> Path:
    """``site-packages/pytriton/tritonserver`` from the nvidia-pytriton wheel."""
    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("triton: the nvidia-pytriton wheel is not installed and no binary given")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def default_binary() -> Path:
    return pytriton_tree() / "bin" / "tritonserver"


def make_backend_dir(target: Path) -> Path:
    """``target/python/`` with the backend library, its utils and this Python's stub."""
    tree = pytriton_tree()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = tree / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise InputError(f"triton: no Python backend stub for Python {version} in {tree}")
    python_dir = target / "python"
    python_dir.mkdir(parents=True)
    for source in (
        tree / "backends" / "python" / "libtriton_python.so",
        tree / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        (python_dir / source.name).symlink_to(source)
    return target


def _tensor_config(name: str, arrays: list[np.ndarray]) -> str:
    """One ``input``/``output`` entry; a dimension that differs between requests is -1."""
    dtype = arrays[0].dtype
    try:
        triton_type = _TRITON_TYPES[dtype.name]
    except KeyError:
        raise InputError(f"triton: dtype {dtype.name} has no Triton type here") from None
    shapes = {array.shape for array in arrays}
    if len({len(shape) for shape in shapes}) > 1:
        raise InputError(f"triton: tensor {name} changes rank between requests")
    dims = [
        d if len({shape[i] for shape in shapes}) == 1 else -1 for i, d in enumerate(arrays[0].shape)
    ]
    # A batched tensor needs a dimension besides the batch: a scalar per request travels
    # as [1] (Triton's own convention) and the model sees it without it.
    shape = f"dims: {dims}" if dims else "dims: [1] reshape: { shape: [] }"
    return f"{{ name: {json.dumps(name)} data_type: {triton_type} {shape} }}"


def scalar_outputs(workload: Workload) -> tuple[str, ...]:
    """The named outputs that are one scalar per request: Triton returns each as [1]
    (see :func:`_tensor_config`), and the clients give it back its shape."""
    if not workload.named:
        return ()
    reply = workload.reply_without_compute(workload.make_request())
    return tuple(name for name, array in reply.items() if np.ndim(array) == 0)


def _tensors(items: list[Any]) -> dict[str, list[np.ndarray]]:
    """Requests or replies by tensor name (a single array is ``INPUT``/``OUTPUT``'s)."""
    found: dict[str, list[np.ndarray]] = {}
    for item in items:
        for name, array in item.items() if isinstance(item, dict) else [("", item)]:
            found.setdefault(name, []).append(array)
    return found


def model_config(scenario: Scenario, workload: Workload, compute: bool) -> str:
    """``config.pbtxt``: the scenario's serving block and the workload's tensors (from its
    requests and the replies of the no-compute path, which have the real replies' shapes)."""
    serving = scenario.serving
    requests = workload.requests()
    inputs = _tensors(requests)
    outputs = _tensors([workload.reply_without_compute(request) for request in requests])
    input_config = ", ".join(
        _tensor_config(name or "INPUT", arrays) for name, arrays in inputs.items()
    )
    output_config = ", ".join(
        _tensor_config(name or "OUTPUT", arrays) for name, arrays in outputs.items()
    )
    parameters = {
        "workload": json.dumps(
            {"name": scenario.workload.name, "options": scenario.workload.options}
        ),
        "pipebench_root": str(PROJECT_ROOT),
        "compute": "workload" if compute else "none",
        "named": "true" if workload.named else "false",
    }
    params = "\n".join(
        f"parameters: {{ key: {json.dumps(key)} value: {{ string_value: {json.dumps(value)} }} }}"
        for key, value in parameters.items()
    )
    return f"""name: "{MODEL_NAME}"
backend: "python"
max_batch_size: {serving.max_batch}
dynamic_batching {{ max_queue_delay_microseconds: {round(serving.batching_timeout_ms * 1000)} }}
input [{input_config}]
output [{output_config}]
instance_group [{{ count: {serving.instances} kind: KIND_CPU }}]
{params}
"""


def make_model_repository(
    target: Path, scenario: Scenario, workload: Workload, compute: bool
) -> Path:
    version_dir = target / MODEL_NAME / "1"
    version_dir.mkdir(parents=True)
    shutil.copy(MODEL_SOURCE, version_dir / "model.py")
    (target / MODEL_NAME / "config.pbtxt").write_text(model_config(scenario, workload, compute))
    return target
