"""The user's own ONNX model (workload ``onnx``): two named inputs, two named outputs, made
here with ``onnx.helper``, served by pipe, pipe+thrift and triton with the same replies as
onnxruntime run by the harness; inputs random or from a perf_analyzer input-data file; bad
input is one line, exit 2."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engines.triton.perf_analyzer import input_data
from engines.workloads import create_workload
from harness.equivalence import digest, mismatch
from harness.errors import InputError
from harness.runner import RunOptions, run_scenario
from harness.scenario import load_scenario
from harness.storage import ResultStore
from tests.cli_helpers import bench
from tests.conftest import hello_scenario

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SYSTEMS = ["pipe", "pipe+thrift", "triton", {"name": "triton", "label": "triton-lean",
           "options": {"client": "lean"}}]  # fmt: skip
LOAD = {"clients": [2], "warmup_s": 0.1, "duration_s": 0.5, "repeats": 1, "max_repeats": 1}


def make_model(path: Path) -> Path:
    """``sum = a + b`` (float32 [batch, 4]) and ``top = argmax(sum)`` (int64 [batch]):
    two named inputs, two outputs of different dtypes and ranks, a symbolic batch."""
    from onnx import TensorProto, helper

    def tensor(name: str, kind: int, shape: list[Any]) -> Any:
        return helper.make_tensor_value_info(name, kind, shape)

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("ArgMax", ["sum"], ["top"], axis=1, keepdims=0),
        ],
        "two_in_two_out",
        [tensor("a", TensorProto.FLOAT, ["batch", 4]), tensor("b", TensorProto.FLOAT, ["N", 4])],
        [
            tensor("sum", TensorProto.FLOAT, ["batch", 4]),
            tensor("top", TensorProto.INT64, ["batch"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what this onnxruntime reads
    onnx.save(model, str(path))
    return path


def b64(values: list[float]) -> str:
    return base64.b64encode(np.array(values, dtype=np.float32).tobytes()).decode()


#: perf_analyzer's input-data format: two steps, each form once (flat, content+shape, b64).
INPUT_DATA = {
    "data": [
        {"a": [1, 2, 3, 4], "b": {"content": [4, 3, 2, 10], "shape": [4]}},
        {"a": {"b64": b64([0.5, 9, 0, -1]), "shape": [4]}, "b": [0, 0, 0, 0]},
    ]
}


def onnx_scenario(tmp_path: Path, **workload: Any) -> dict[str, Any]:
    make_model(tmp_path / "model.onnx")
    return hello_scenario(
        name="onnx_two_tensors",
        workload={"name": "onnx", "model": "model.onnx", **workload},  # relative: to the file
        serving={"instances": 1, "batching_timeout_ms": 1, "max_batch": 4},
        load=LOAD,
        systems=SYSTEMS,
    )


def run(path: Path, tmp_path: Path) -> list[Any]:
    result = run_scenario(load_scenario(path), path, ResultStore(tmp_path, "result"), RunOptions())
    return result.records


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("with_input_data", [False, True], ids=["random", "input_data"])
def test_two_named_inputs_run_on_every_system_with_the_same_replies(
    tmp_path, write_scenario, with_input_data
):
    extra: dict[str, Any] = {"seed": 7}
    if with_input_data:
        (tmp_path / "inputs.json").write_text(json.dumps(INPUT_DATA))
        extra = {"input_data": "inputs.json"}
    path = write_scenario(onnx_scenario(tmp_path, **extra))
    records = run(path, tmp_path)
    assert {r.label for r in records} == {"pipe", "pipe+thrift", "triton", "triton-lean"}
    for record in records:
        assert not record.failure, f"{record.label}: {record.failure}"
        assert record.qps > 0 and record.errors == 0, record.label
        assert record.reply_check is not None and record.reply_check["method"] == "expected"
        assert record.reply_check["requests"] == (2 if with_input_data else 1)
    # Every system's replies were checked against onnxruntime run by the harness, and
    # they are the same bytes on every system (one model, one runtime).
    assert len({r.reply_check["digest"] for r in records}) == 1  # type: ignore[index]
    if with_input_data:
        files = {"model": tmp_path / "model.onnx", "input_data": tmp_path / "inputs.json"}
        workload = create_workload("onnx", {key: str(value) for key, value in files.items()})
        first, second = workload.requests()
        assert first["a"].tolist() == [1, 2, 3, 4] and second["a"].tolist() == [0.5, 9, 0, -1]
        reply = workload.expected_reply(first)
        assert reply["sum"].tolist() == [5, 5, 5, 14] and int(reply["top"]) == 3


def test_requests_and_replies_are_named_tensors_without_the_batch(tmp_path):
    model = make_model(tmp_path / "model.onnx")
    workload = create_workload("onnx", {"model": str(model), "seed": 3})
    request = workload.make_request()
    assert sorted(request) == ["a", "b"]
    assert request["a"].shape == (4,) and request["a"].dtype == np.float32
    assert digest(request) == digest(create_workload("onnx", {"model": str(model), "seed": 3})
                                     .make_request())  # fmt: skip
    workload.setup()
    alone = workload.compute([request])[0]
    batched = workload.compute([request, request, request])
    assert sorted(alone) == ["sum", "top"] and alone["top"].dtype == np.int64
    assert all(mismatch(alone, reply) is None for reply in batched)
    np.testing.assert_array_equal(alone["sum"], request["a"] + request["b"])
    wrong = {**alone, "top": np.asarray(int(alone["top"]) + 1)}
    assert mismatch(alone, wrong).startswith("top: values differ")
    assert "expected tensors ['sum', 'top'], got ['sum']" in mismatch(alone, {"sum": alone["sum"]})


def test_perf_analyzer_gets_every_step_as_named_tensors(tmp_path):
    (tmp_path / "inputs.json").write_text(json.dumps(INPUT_DATA))
    model = make_model(tmp_path / "model.onnx")
    options = {"model": str(model), "input_data": str(tmp_path / "inputs.json")}
    workload = create_workload("onnx", options)
    data = input_data(workload.requests(), "INPUT")
    assert [sorted(step) for step in data["data"]] == [["a", "b"], ["a", "b"]]
    assert data["data"][1]["a"] == {"b64": b64([0.5, 9, 0, -1]), "shape": [4]}


@pytest.mark.parametrize(
    ("workload", "inputs", "message"),
    [
        ({"model": "missing.onnx"}, None, r"workload\.model: no such file: .*missing\.onnx"),
        (
            {"input_data": "inputs.json"},
            {"data": [{"a": [1, 2, 3, 4], "b": [1, 2, 3, 4], "c": [1]}]},
            r"workload: .*inputs\.json: data\[0\]: unknown tensor 'c' \(the model's inputs: a, b\)",
        ),
        (
            {"input_data": "inputs.json"},
            {"data": [{"a": {"content": [1, 2, 3], "shape": [3]}, "b": [1, 2, 3, 4]}]},
            r"inputs\.json: data\[0\]\.a\.shape: \[3\] does not fit the model's input "
            r"float32 \[4\]",
        ),
        (
            {"input_data": "inputs.json"},
            {"data": [{"a": [1, 2, 3], "b": [1, 2, 3, 4]}]},
            r"inputs\.json: data\[0\]\.a\.content: 3 values, but shape \[4\] holds 4",
        ),
        (
            {"input_data": "inputs.json"},
            {"data": [{"a": [1, 2, 3, 4]}]},
            r"inputs\.json: data\[0\]: no value for input 'b'",
        ),
        (
            {"input_data": "inputs.json"},
            {"data": [{"a": {"b64": b64([1, 2]), "shape": [4]}, "b": [1, 2, 3, 4]}]},
            r"data\[0\]\.a\.b64: 8 bytes, but float32 \[4\] takes 16",
        ),
    ],
    ids=["missing-model", "unknown-tensor", "wrong-shape", "wrong-count", "missing-tensor", "b64"],
)
def test_bad_model_or_input_data_is_one_line_exit_2(
    tmp_path, write_scenario, workload, inputs, message
):
    if inputs is not None:
        (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    data = onnx_scenario(tmp_path)
    data["workload"].update(workload)
    path = write_scenario(data)
    done = bench("run", str(path), "--results-dir", str(tmp_path / "results"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert __import__("re").search(message, lines[0]), lines[0]


def test_a_system_that_cannot_carry_named_tensors_is_refused(tmp_path, write_scenario):
    data = onnx_scenario(tmp_path)
    data["systems"] = ["pipe", "torchpipe"]
    done = bench("run", str(write_scenario(data)), "--results-dir", str(tmp_path / "results"))
    assert done.returncode == 2
    assert (
        "systems.1.name: torchpipe cannot carry the named tensors of workload onnx" in done.stderr
    )


@pytest.mark.usefixtures("no_leaks")
def test_a_remote_model_without_its_file_is_measured_and_its_replies_compared(
    tmp_path, write_scenario
):
    """A Triton serving a model the harness has no file of: the same input-data file,
    unchanged, is sent (dtypes from the server's metadata); the replies of the systems
    measuring it are compared with each other and each record keeps their digest."""
    from tests.test_deployment import served

    served_path = write_scenario(onnx_scenario(tmp_path), "served.yaml")
    (tmp_path / "inputs.json").write_text(json.dumps(INPUT_DATA))
    with served(str(served_path), "triton") as where:
        http = {"url": where["http"], "model": where["model"], "metrics_url": where["metrics"]}
        grpc = {"url": where["grpc"], "model": where["model"]}
        data = hello_scenario(
            name="remote_onnx",
            workload={"name": "onnx", "input_data": "inputs.json"},  # no model file
            serving="as_deployed",
            load=LOAD,
            systems=[
                {"name": "triton", "label": "http", "options": http},
                {"name": "triton", "label": "grpc", "options": grpc},
            ],
        )
        path = write_scenario(data, "remote.yaml")
        records = {r.label: r for r in run(path, tmp_path)}
        (tmp_path / "bad.json").write_text(json.dumps({"data": [{"a": [1, 2, 3, 4], "z": [1]}]}))
        bad = {**data, "workload": {"name": "onnx", "input_data": "bad.json"}}
        with pytest.raises(InputError, match=r"^http: .*bad\.json: data\[0\]: unknown tensor 'z'"):
            run(write_scenario(bad, "bad.yaml"), tmp_path)
        local = {**data, "systems": ["pipe", {"name": "triton", "options": http}]}
        refused = bench("run", str(write_scenario(local, "local.yaml")))
    for record in records.values():
        assert not record.failure, f"{record.label}: {record.failure}"
        assert record.qps > 0 and record.errors == 0
    assert records["http"].server_stats["server_times"]["requests"] >= records["http"].ok
    http_check, grpc_check = records["http"].reply_check, records["grpc"].reply_check
    assert http_check["method"] == grpc_check["method"] == "compared"
    assert grpc_check["compared_with"] == "http" and http_check["requests"] == 2
    assert http_check["digest"] == grpc_check["digest"]  # the same replies, byte for byte
    assert len(http_check["digest"]) == 64
    assert refused.returncode == 2
    assert "systems.0: pipe cannot serve workload onnx without its model file" in refused.stderr
