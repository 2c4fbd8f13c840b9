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

import numpy as np

from engines.workloads import Workload
from harness.errors import InputError
from harness.scenario import Scenario

MODEL_NAME = "pipebench"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_SOURCE = PROJECT_ROOT / "model_repository" / MODEL_NAME / "1" / "model.py"

_TRITON_TYPES = {
    "uint8": "TYPE_UINT8",
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


def _dims(array: np.ndarray) -> str:
    return "[" + ", ".join(str(d) for d in array.shape) + "]"


def _triton_type(array: np.ndarray) -> str:
    try:
        return _TRITON_TYPES[array.dtype.name]
    except KeyError:
        raise InputError(f"triton: dtype {array.dtype.name} has no Triton type here") from None


def model_config(scenario: Scenario, workload: Workload, compute: bool) -> str:
    serving = scenario.serving
    request = workload.make_request()
    reply = workload.reply_without_compute(request)
    parameters = {
        "workload": json.dumps(
            {"name": scenario.workload.name, "options": scenario.workload.options}
        ),
        "pipebench_root": str(PROJECT_ROOT),
        "compute": "workload" if compute else "none",
    }
    params = "\n".join(
        f"parameters: {{ key: {json.dumps(key)} value: {{ string_value: {json.dumps(value)} }} }}"
        for key, value in parameters.items()
    )
    return f"""name: "{MODEL_NAME}"
backend: "python"
max_batch_size: {serving.max_batch}
dynamic_batching {{ max_queue_delay_microseconds: {round(serving.batching_timeout_ms * 1000)} }}
input [{{ name: "INPUT" data_type: {_triton_type(request)} dims: {_dims(request)} }}]
output [{{ name: "OUTPUT" data_type: {_triton_type(reply)} dims: {_dims(reply)} }}]
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
