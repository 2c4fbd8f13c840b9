"""Bad input: every mistake is one line ``FILE: field.path: reason``, exit code 2.

Scenario mistakes go through :func:`load_scenario` (what ``bench run`` calls first, before
anything starts); mistakes only the command line can make go through the real ``bench``
process. The list of cases is the documentation of what is caught.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import InputError
from harness.scenario import load_scenario
from tests.cli_helpers import bench
from tests.conftest import hello_scenario

DELETE = object()


def mutated(**changes: Any) -> str:
    """The valid test scenario as YAML, with ``a__b=value`` set (or deleted) at ``a.b``."""
    data = hello_scenario()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return yaml.safe_dump(data)


NOT_EXECUTABLE = "{tmp}/tritonserver-not-executable"

#: id -> (file content, expected ``field.path: reason`` after ``FILE: ``).
SCENARIO_CASES: dict[str, tuple[str | bytes, str]] = {
    "yaml_unclosed_bracket": (
        "name: x\nload: {clients: [1, 2}\n",
        "line 2: invalid YAML: expected ',' or ']', but got '}'",
    ),
    "yaml_tab_indent": (
        "name: x\n\tload: 1\n",
        "line 2: invalid YAML: found character '\\t' that cannot start any token",
    ),
    "yaml_duplicate_key": (
        "name: first\nload: {clients: [1]}\nname: second\n",
        "line 3: invalid YAML: duplicate key 'name'",
    ),
    "empty_file": ("", "(top level): expected a mapping of scenario fields"),
    "top_level_list": ("- pipe\n- thrift\n", "(top level): expected a mapping of scenario fields"),
    "not_utf8": (b"name: \xff\xfe\n", "not a UTF-8 text file"),
    "nested_too_deeply": ("a: " + "[" * 3000 + "]" * 3000 + "\n", "(top level): nested too deeply"),
    "unknown_top_level_key": (
        mutated(sytems=["pipe"], systems=DELETE),
        "sytems: unknown key (did you mean systems?) (+1 more)",
    ),
    "missing_load": (mutated(load=DELETE), "load: Field required"),
    "missing_name": (mutated(name=DELETE), "name: Field required"),
    "name_not_a_string": (mutated(name=["a"]), "name: Input should be a valid string"),
    "name_escapes_results_folder": (
        mutated(name="../escape"),
        "name: '../escape' is not usable in a result file name "
        "(letters, digits and _ . + - only, not starting with . _ + -)",
    ),
    "description_not_a_string": (
        mutated(description=5),
        "description: Input should be a valid string",
    ),
    "key_with_newline_stays_one_line": (
        yaml.safe_dump({**hello_scenario(), "bad\nkey": 1}),
        "'bad\\nkey': unknown key (valid: name, description, seed_table, workload, serving, ",
    ),
    "unknown_load_key": (
        mutated(load__clients_count=3),
        "load.clients_count: unknown key (did you mean clients?)",
    ),
    "unknown_serving_key": (
        mutated(serving__instance=2),
        "serving.instance: unknown key (did you mean instances?)",
    ),
    "clients_not_a_list": (mutated(load__clients=4), "load.clients: Input should be a valid list"),
    "clients_empty": (
        mutated(load__clients=[]),
        "load.clients: List should have at least 1 item after validation, not 0",
    ),
    "clients_zero": (mutated(load__clients=[0]), "load.clients.0: Input should be greater than 0"),
    "clients_negative": (
        mutated(load__clients=[1, -3]),
        "load.clients.1: Input should be greater than 0",
    ),
    "clients_beyond_the_thread_budget": (
        mutated(load__clients=[2, 1_000_000]),
        "load.clients: clients 1000000 needs 1000000 threads; this machine allows at most ",
    ),
    "open_loop_senders_beyond_the_thread_budget": (
        mutated(load__clients=DELETE, load__rates=[10.0], load__max_outstanding=10**7),
        "load.max_outstanding: max_outstanding 10000000 needs 10000000 threads; ",
    ),
    "clients_fractional": (
        mutated(load__clients=[1.5]),
        "load.clients.0: Input should be a valid integer",
    ),
    "clients_boolean": (
        mutated(load__clients=[True]),
        "load.clients.0: Input should be a valid integer",
    ),
    "clients_and_rates": (
        mutated(load__rates=[100.0]),
        "load: give clients (closed loop) or rates (open loop), exactly one",
    ),
    "rate_negative": (
        mutated(load__clients=DELETE, load__rates=[-5]),
        "load.rates.0: Input should be greater than 0",
    ),
    "arrival_unknown": (
        mutated(load__arrival="burst"),
        "load.arrival: Input should be 'poisson' or 'constant'",
    ),
    "duration_zero": (
        mutated(load__duration_s=0),
        "load.duration_s: Input should be greater than 0",
    ),
    "duration_infinite": (
        mutated(load__duration_s=float("inf")),
        "load.duration_s: Input should be a finite number",
    ),
    "warmup_negative": (
        mutated(load__warmup_s=-1),
        "load.warmup_s: Input should be greater than or equal to 0",
    ),
    "request_timeout_zero": (
        mutated(load__request_timeout_s=0),
        "load.request_timeout_s: Input should be greater than 0",
    ),
    "instances_zero": (
        mutated(serving__instances=0),
        "serving.instances: Input should be greater than 0",
    ),
    "max_batch_negative": (
        mutated(serving__max_batch=-2),
        "serving.max_batch: Input should be greater than 0",
    ),
    "max_batch_beyond_tritons_int32": (
        mutated(serving__max_batch=10**10),
        "serving.max_batch: Input should be less than or equal to 2147483647",
    ),
    "payload_empty": (mutated(workload__payload=""), "workload.payload: must not be empty"),
    "batching_timeout_negative": (
        mutated(serving__batching_timeout_ms=-1),
        "serving.batching_timeout_ms: Input should be greater than or equal to 0",
    ),
    "unknown_workload": (
        mutated(workload={"name": "resnet1000"}),
        "workload.name: unknown workload 'resnet1000' (known: ",
    ),
    "workload_not_a_mapping": (
        mutated(workload="echo"),
        "workload: Input should be a valid dictionary or instance of WorkloadSpec",
    ),
    "unknown_workload_option": (
        mutated(workload__size=3),
        "workload.size: unknown key (valid: payload, type, delay_ms, payload_bytes)",
    ),
    "workload_option_wrong_type": (
        mutated(workload__payload=[1, 2]),
        "workload.payload: Input should be a valid string",
    ),
    "unknown_system": (
        mutated(systems=["pipe", "torchserve"]),
        "systems.1.name: unknown system 'torchserve' (known: ",
    ),
    "systems_empty": (
        mutated(systems=[]),
        "systems: List should have at least 1 item after validation, not 0",
    ),
    "systems_not_a_list": (mutated(systems="pipe"), "systems: Input should be a valid list"),
    "system_not_a_name_or_mapping": (
        mutated(systems=[3]),
        "systems.0: Input should be a valid dictionary or instance of SystemSpec",
    ),
    "duplicate_columns": (
        mutated(systems=["triton", "triton"]),
        "systems: two systems share the column 'triton': give one a label",
    ),
    "label_taken_by_another_system": (
        mutated(systems=["pipe", {"name": "thrift", "label": "pipe"}]),
        "systems: two systems share the column 'pipe': give one a label",
    ),
    "unknown_system_key": (
        mutated(systems=[{"name": "pipe", "opts": {}}]),
        "systems.0.opts: unknown key (did you mean options?)",
    ),
    "unknown_system_option": (
        mutated(systems=[{"name": "pipe", "options": {"foo": 1}}]),
        "systems.0.options.foo: unknown key (valid: ",
    ),
    "system_options_not_a_mapping": (
        mutated(systems=[{"name": "pipe", "options": [1]}]),
        "systems.0.options: Input should be a valid dictionary",
    ),
    "triton_protocol_unknown": (
        mutated(systems=[{"name": "triton", "options": {"protocol": "udp"}}]),
        "systems.0.options.protocol: Input should be 'http' or 'grpc'",
    ),
    "triton_binary_not_found": (
        mutated(systems=[{"name": "triton", "options": {"binary": "/nonexistent/tritonserver"}}]),
        "systems.0.options.binary: tritonserver binary not found or not executable: "
        "/nonexistent/tritonserver",
    ),
    "triton_binary_not_executable": (
        mutated(systems=[{"name": "triton", "options": {"binary": NOT_EXECUTABLE}}]),
        f"systems.0.options.binary: tritonserver binary not found or not executable: "
        f"{NOT_EXECUTABLE}",
    ),
}


@pytest.mark.parametrize(("content", "expected"), SCENARIO_CASES.values(), ids=SCENARIO_CASES)
def test_scenario_mistake_is_one_clear_line(content, expected, tmp_path):
    (tmp_path / "tritonserver-not-executable").write_text("#!/bin/sh\n")
    path = tmp_path / "scenario.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("{tmp}", str(tmp_path)))
    with pytest.raises(InputError) as raised:
        load_scenario(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: {expected.replace('{tmp}', str(tmp_path))}")
    assert "\n" not in message and raised.value.exit_code == 2


def _results_folder_not_writable(tmp_path: Path) -> str:
    if os.geteuid() == 0:  # root writes through any mode bits: use a file system that refuses
        return "/sys/pipebench-results"
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return str(folder)


GOOD = mutated()
#: id -> (files to create in tmp, ``bench run`` arguments, expected text of the error line).
#: ``{tmp}`` is the test's folder, ``{unwritable}`` a results folder that cannot be written.
CLI_CASES: dict[str, tuple[dict[str, str], list[str], str]] = {
    "scenario_path_missing": (
        {},
        ["{tmp}/nope.yaml"],
        "{tmp}/nope.yaml: cannot read: No such file or directory",
    ),
    "scenario_folder_empty": ({}, ["{tmp}"], "{tmp}: no scenario files (*.yaml) in this folder"),
    "one_bad_file_in_a_folder_stops_all": (
        {"good.yaml": GOOD, "bad.yaml": mutated(load__duration_s=-1)},
        ["{tmp}"],
        "{tmp}/bad.yaml: load.duration_s: Input should be greater than 0",
    ),
    "same_scenario_twice": (
        {"s.yaml": GOOD},
        ["{tmp}/s.yaml", "{tmp}/s.yaml"],
        "{tmp}/s.yaml: name: 'test_hello' is also the name of {tmp}/s.yaml",
    ),
    "two_scenarios_one_name": (
        {"a.yaml": GOOD, "b.yaml": GOOD},
        ["{tmp}/a.yaml", "{tmp}/b.yaml"],
        "{tmp}/b.yaml: name: 'test_hello' is also the name of {tmp}/a.yaml",
    ),
    "systems_filter_empty": (
        {"s.yaml": GOOD},
        ["{tmp}/s.yaml", "--systems", ","],
        "{tmp}/s.yaml: --systems: , not in this scenario (it has: pipe, pipe+thrift, ",
    ),
    "systems_filter_label_absent": (
        {"s.yaml": GOOD},
        ["{tmp}/s.yaml", "--systems", "triton-grpc"],
        "{tmp}/s.yaml: --systems: triton-grpc not in this scenario",
    ),
    "results_folder_is_a_file": (
        {"s.yaml": GOOD, "file": ""},
        ["{tmp}/s.yaml", "--results-dir", "{tmp}/file"],
        "{tmp}/file: results folder not writable: File exists",
    ),
    "results_folder_under_a_file": (
        {"s.yaml": GOOD, "file": ""},
        ["{tmp}/s.yaml", "--results-dir", "{tmp}/file/results"],
        "{tmp}/file/results: results folder not writable: Not a directory",
    ),
    "results_folder_empty_string": (
        {"s.yaml": GOOD},
        ["{tmp}/s.yaml", "--results-dir", ""],
        "--results-dir: empty (give a folder, e.g. --results-dir results)",
    ),
    "results_folder_not_writable": (
        {"s.yaml": GOOD},
        ["{tmp}/s.yaml", "--results-dir", "{unwritable}"],
        "{unwritable}: results folder not writable: ",
    ),
    "triton_binary_not_found": (
        {"s.yaml": mutated(systems=[{"name": "triton", "options": {"binary": "/no/triton"}}])},
        ["{tmp}/s.yaml"],
        "{tmp}/s.yaml: systems.0.options.binary: tritonserver binary not found or not "
        "executable: /no/triton",
    ),
}


@pytest.mark.parametrize(("files", "args", "expected"), CLI_CASES.values(), ids=CLI_CASES)
def test_command_line_mistake_exits_2_with_one_line(files, args, expected, tmp_path):
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    results = tmp_path / "results-of-this-run"
    if "--results-dir" not in args:
        args = [*args, "--results-dir", str(results)]
    fill = {"tmp": str(tmp_path)}
    if "{unwritable}" in " ".join(args):
        fill["unwritable"] = _results_folder_not_writable(tmp_path)
    done = bench("run", *(arg.format(**fill) for arg in args), timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "\n" not in done.stderr.rstrip("\n"), done.stderr
    assert done.stderr.startswith(f"error: {expected.format(**fill)}"), done.stderr
    assert not results.exists()  # refused before anything started
