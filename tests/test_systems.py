"""One contract suite, run against every system with its real server."""

from __future__ import annotations

import numpy as np
import pytest

from engines.workloads import create_workload
from harness.errors import SystemFailure
from harness.system import REGISTRY, create_system
from tests.conftest import server_processes

pytestmark = pytest.mark.usefixtures("no_leaks")


VARIANTS = [
    *sorted(REGISTRY),
    {"name": "triton", "options": {"client": "lean"}},
    {"name": "triton", "options": {"protocol": "grpc"}},
    {"name": "pipe", "options": {"kind": "process"}},
]


@pytest.mark.parametrize("name", VARIANTS, ids=str)
def test_system_echoes_payload_byte_for_byte(name, make_scenario):
    scenario = make_scenario(systems=[name], workload={"name": "echo", "payload": "Hi, pipebench!"})
    system = create_system(scenario.systems[0], scenario)
    try:
        system.start()
        system.ready(60)
        request = create_workload("echo", {"payload": "Hi, pipebench!"}).make_request()
        clients = [system.client() for _ in range(3)]
        for client in clients:
            reply = client.call(request)
            assert reply.dtype == np.uint8
            assert reply.tobytes() == b"Hi, pipebench!"
            client.close()
        assert isinstance(system.stats(), dict)
    finally:
        system.stop()
        system.stop()  # idempotent
    assert not server_processes()


@pytest.mark.parametrize("name", ["pipe", "pipe+thrift", "triton"])
def test_server_side_stats_count_requests(name, make_scenario):
    scenario = make_scenario(systems=[name])
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(60)
        client = system.client()
        request = create_workload("echo", {}).make_request()
        for _ in range(5):
            client.call(request)
        client.close()
        stats = system.stats()
    if name == "triton":
        assert int(stats["model_stats"][0]["inference_count"]) == 5
    else:
        assert stats["requests"] == 5
        assert sum(stats["batch_sizes"].values()) == stats["batches"]


def test_stop_after_failed_start_is_safe(make_scenario, tmp_path):
    not_triton = tmp_path / "tritonserver"
    not_triton.write_text("#!/bin/sh\necho 'this is no tritonserver' >&2\nexit 3\n")
    not_triton.chmod(0o755)
    scenario = make_scenario(systems=[{"name": "triton", "options": {"binary": str(not_triton)}}])
    system = create_system(scenario.systems[0], scenario)
    system.start()
    with pytest.raises(SystemFailure, match=r"(?s)exited with code 3 .*this is no tritonserver"):
        system.ready(30)
    system.stop()
    system.stop()
