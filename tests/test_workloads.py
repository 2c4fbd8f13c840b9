"""Workloads: what each computes, and that every system serving it replies the same.

The cross-system tests start the real servers (Thrift, Triton) and check one reply each
with the harness's equivalence check, the same one the runner applies before measuring.
"""

from __future__ import annotations

import re
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from engines.workloads import REGISTRY, create_workload
from engines.workloads.jpeg import GREETING, import_cv2
from engines.workloads.resnet_arch import make_weights, parameter_count
from engines.workloads.runtimes import gpu_present
from harness.equivalence import check_equivalent
from harness.errors import InputError
from harness.scenario import load_scenario
from harness.system import create_system
from tests.conftest import ROOT, hello_scenario

HAS_TORCH = find_spec("torch") is not None


def _gpu() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return bool(torch.cuda.is_available())


# -- what each workload computes -------------------------------------------------------------
@pytest.mark.parametrize(("name", "params"), [("resnet18", 11_689_512), ("resnet50", 25_557_032)])
def test_resnet_has_torchvisions_parameter_count(name, params):
    depth = int(name.removeprefix("resnet"))
    weights = make_weights(depth, seed=0)
    assert parameter_count(weights) == params
    assert weights["conv1.weight"].shape == (64, 3, 7, 7)
    assert weights["fc.weight"].shape == (1000, 512 if depth == 18 else 2048)


def test_resnet_reply_is_logits_that_depend_on_the_image_and_the_seed():
    model = create_workload("resnet18", {"seed": 0})
    model.setup()
    image = model.make_request()
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    logits = model.compute([image])[0]
    assert logits.shape == (1000,) and logits.dtype == np.float32
    assert np.all(np.isfinite(logits)) and np.ptp(logits) > 0
    other_image = model.compute([255 - image])[0]
    assert not np.allclose(logits, other_image)
    batch = model.compute([255 - image, image, image])  # batching must not mix requests
    assert np.allclose(batch[1], logits, atol=1e-5) and np.allclose(batch[0], other_image)
    reseeded = create_workload("resnet18", {"seed": 1})
    reseeded.setup()
    assert not np.allclose(reseeded.compute([image])[0], logits)
    assert model.reply_without_compute(image).shape == logits.shape


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional runtime)")
def test_torch_and_onnxruntime_run_the_same_network():
    replies = {}
    for runtime in ("onnxruntime", "torch"):
        model = create_workload("resnet18", {"runtime": runtime, "threads": 2})
        model.setup()
        replies[runtime] = model.compute([model.make_request()])[0]
    scale = np.abs(replies["onnxruntime"]).max()
    assert np.abs(replies["torch"] - replies["onnxruntime"]).max() < 1e-4 * scale


@pytest.mark.skipif(not _gpu(), reason="no CUDA GPU visible to torch")
@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "tensorrt"])
def test_gpu_runtime_matches_the_cpu_reference(runtime):
    """The GPU code path: CUDA torch, onnxruntime's CUDA provider, a TensorRT engine."""
    if runtime == "tensorrt" and find_spec("tensorrt") is None:
        pytest.skip("tensorrt is not installed")
    if runtime == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            pytest.skip("onnxruntime has no CUDA provider (onnxruntime-gpu not installed)")
    cpu = create_workload("resnet18", {})
    gpu = create_workload("resnet18", {"runtime": runtime, "device": "cuda"})
    image = cpu.make_request()
    expected = cpu.expected_reply(image)
    gpu.setup()
    replies = gpu.compute([image, 255 - image, image])
    # TensorRT may use TF32 on recent GPUs: allow 1 % of the logits' scale.
    assert np.abs(replies[0] - expected).max() < 1e-2 * np.abs(expected).max()
    assert np.allclose(replies[2], replies[0], atol=1e-2 * np.abs(expected).max())


def test_gpu_runtime_on_the_cpu_is_an_input_error_and_a_missing_one_says_why(write_scenario):
    """TensorRT on the CPU is a mistake anywhere; on a machine without a GPU (or without
    the package) the scenario is valid and the workload says why it cannot run here."""
    data = hello_scenario(workload={"name": "resnet50", "runtime": "tensorrt"})
    with pytest.raises(InputError, match=r"workload: .*tensorrt runs on a GPU: set device: cuda"):
        load_scenario(write_scenario(data))
    data["workload"]["device"] = "cuda"
    scenario = load_scenario(write_scenario(data))
    reason = create_workload("resnet50", scenario.workload.options).unavailable()
    if not gpu_present():
        assert reason == "needs a GPU (TensorRT)"
    elif find_spec("tensorrt") is None:
        assert reason is not None and re.match(r"runtime tensorrt needs .*tensorrt.*pip", reason)
    if not _gpu() and HAS_TORCH:
        model = create_workload("resnet18", {"runtime": "torch", "device": "cuda"})
        with pytest.raises(InputError, match=r"needs a GPU \(torch\)|sees no CUDA GPU"):
            model.setup()


def test_sum_is_pure_python_arithmetic():
    work = create_workload("sum", {"n": 1000})
    request = work.make_request()
    assert work.compute([request])[0].tolist() == [500_500]
    assert work.expected_reply(request).tolist() == [500_500]
    assert work.compute([np.array([10], dtype=np.int64)])[0].tolist() == [55]


def test_jpeg_decodes_a_prepared_640x444_picture_and_returns_the_greeting():
    work = create_workload("jpeg", {})
    work.setup()
    cv2 = import_cv2()
    decoded = cv2.imdecode(work._jpeg, cv2.IMREAD_COLOR)
    assert decoded.shape == (444, 640, 3)
    assert work._jpeg.size > 20_000  # a real, photo-sized JPEG, not a flat picture
    request = work.make_request()
    assert request.tobytes() == GREETING.encode()
    replies = work.compute([request, request])
    assert [reply.tobytes() for reply in replies] == [GREETING.encode()] * 2


def test_echo_bytes_sends_one_string_element():
    request = create_workload("echo", {"type": "bytes", "payload": "HelloWorld"}).make_request()
    assert request.dtype == object and request.tolist() == [b"HelloWorld"]


@pytest.mark.parametrize("kind", ["uint8", "bytes"])
def test_echo_payload_bytes_is_an_exact_deterministic_size(kind):
    def data(**options: object) -> bytes:
        request = create_workload("echo", {"type": kind, **options}).make_request()
        return request.tobytes() if kind == "uint8" else request[0]

    assert data(payload_bytes=1) == b"H"
    assert data(payload="abc", payload_bytes=7) == b"abcabca"
    big = data(payload_bytes=65536)
    assert len(big) == 65536 and big == data(payload_bytes=65536)
    assert big.startswith(b"HelloWorldHello")
    assert data(payload="HelloWorld") == b"HelloWorld"  # payload alone: unchanged


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (
            {"payload_bytes": 0},
            "workload.payload_bytes: Input should be greater than or equal to 1",
        ),
        (
            {"payload_bytes": -5},
            "workload.payload_bytes: Input should be greater than or equal to 1",
        ),
        ({"payload_bytes": "many"}, "workload.payload_bytes: Input should be a valid integer"),
        ({"payload_bytes": 4, "payload": ""}, "workload.payload: must not be empty"),
    ],
)
def test_echo_payload_bytes_rejects_bad_sizes_in_one_line(options, reason, write_scenario):
    data = hello_scenario(workload={"name": "echo", **options})
    path = write_scenario(data)
    with pytest.raises(InputError) as error:
        load_scenario(path)
    assert str(error.value).startswith(f"{path}: {reason}")
    assert "\n" not in str(error.value)


# -- every system replies the same -------------------------------------------------------------
CASES = {
    "echo-bytes": (
        {"name": "echo", "type": "bytes"},
        ["pipe+thrift", "thrift", "triton", "torchpipe", "torchpipe+thrift"],
    ),
    "echo-64k": (
        {"name": "echo", "payload_bytes": 65536},
        ["pipe", "pipe+thrift", "thrift", "torchpipe+thrift", "triton"],
    ),
    "sum": ({"name": "sum", "n": 2000}, ["pipe+thrift", "triton-rpc", "triton"]),
    "jpeg": ({"name": "jpeg"}, ["pipe+thrift", "triton"]),
    "resnet18": (
        {"name": "resnet18", "threads": 1},
        ["pipe", "pipe+thrift", "thrift", "triton-rpc", "triton"],
    ),
}


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_system_gives_the_expected_reply(case, make_scenario):
    workload, systems = CASES[case]
    scenario = make_scenario(workload=workload, systems=systems)
    work = create_workload(scenario.workload.name, scenario.workload.options)
    for spec in scenario.systems:
        system = create_system(spec, scenario)
        try:
            system.start()
            system.ready(120)
            check_equivalent(system, spec, work)  # raises SystemFailure on a wrong reply
        finally:
            system.stop()


def test_every_workload_is_registered_and_builds_its_request():
    assert set(REGISTRY) >= {"echo", "sum", "jpeg", "resnet18", "resnet50", "onnx"}
    for name in sorted(set(REGISTRY) - {"onnx"}):  # onnx needs a model: test_onnx_workload.py
        assert isinstance(create_workload(name, {}).make_request(), np.ndarray)


# -- the scenarios of the seed's tables ---------------------------------------------------------
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: Path(path).stem)
def test_every_scenario_file_is_valid_and_names_its_seed_table(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    if path.stem != "hello_world":
        assert scenario.seed_table, "each scenario says which seed table it reproduces"


def test_seed_tables_are_each_reproduced_once():
    tables = [load_scenario(path).seed_table for path in SCENARIOS]
    named = [table for table in tables if table]
    assert len(named) == len(set(named))
    assert {"adaptive-batching", "gil-sum", "resnet18-local", "resnet50-batching"} <= set(named)


def test_echo_delay_ms_sleeps_per_request_on_the_server_side():
    echo = create_workload("echo", {"delay_ms": 20})
    request = echo.make_request()
    began = time.perf_counter()
    replies = echo.compute([request, request])
    took = time.perf_counter() - began
    assert took >= 0.040  # 20 ms for each of the two requests of the batch
    assert all(np.array_equal(reply, request) for reply in replies)
    assert create_workload("echo", {}).params.delay_ms == 0
