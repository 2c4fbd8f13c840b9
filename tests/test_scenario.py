"""Scenario loading: the shipped scenarios are valid, every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.scenario import load_scenario
from tests.conftest import ROOT, hello_scenario


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_are_valid(path: Path):
    scenario = load_scenario(path)
    assert scenario.systems and scenario.load.clients


def test_hello_world_matches_the_seed_tables():
    scenario = load_scenario(ROOT / "scenarios" / "hello_world.yaml")
    assert scenario.workload.options == {"payload": "HelloWorld"}
    assert scenario.load.clients == [1, 10]
    assert (scenario.serving.instances, scenario.serving.max_batch) == (1, 1)
    assert scenario.serving.batching_timeout_ms == 0
    assert [s.column for s in scenario.systems] == [
        "pipe",
        "torchpipe-python",
        "torchpipe-c++",
        "pipe+thrift",
        "torchpipe+thrift-python",
        "torchpipe+thrift-c++",
        "thrift",
        "triton",
        "triton-bytes",
    ]
    # The seed's string remark is one paired comparison: BYTES overrides the workload type.
    assert scenario.for_system(scenario.systems[-1]).workload.options["type"] == "bytes"
    assert scenario.baseline_column == "thrift"


BAD = {
    "clients_zero": (dict(load={"clients": [0]}), "load.clients.0: Input should be greater than 0"),
    "clients_empty": (dict(load={"clients": []}), "load.clients: List should have at least 1 item"),
    "unknown_top_key": (dict(colour="red"), "colour: unknown key (valid: name, description, "),
    "unknown_system": (dict(systems=["nginx"]), "systems.0.name: unknown system 'nginx'"),
    "unknown_workload": (dict(workload={"name": "fft"}), "workload.name: unknown workload 'fft'"),
    "workload_param_type": (
        dict(workload={"name": "echo", "payload": 5}),
        "workload.payload: Input should be a valid string",
    ),
    "system_option": (
        dict(systems=[{"name": "triton", "options": {"protocol": "udp"}}]),
        "systems.0.options.protocol: Input should be 'http' or 'grpc'",
    ),
    "duplicate_column": (dict(systems=["pipe", "pipe"]), "two systems share the column 'pipe'"),
    "negative_timeout": (
        dict(serving={"batching_timeout_ms": -1}),
        "serving.batching_timeout_ms: Input should be greater than or equal to 0",
    ),
    "instances_type": (
        dict(serving={"instances": "many"}),
        "serving.instances: Input should be a valid integer",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_field_is_reported_with_file_and_path(case, write_scenario):
    overrides, message = BAD[case]
    path = write_scenario(hello_scenario(**overrides))
    with pytest.raises(InputError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed", "invalid YAML"),
        ("- just\n- a list\n", "(top level): expected a mapping"),
        ("", "(top level): expected a mapping"),
    ],
)
def test_malformed_files(text, message, write_scenario):
    path = write_scenario(text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_scenario(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")
