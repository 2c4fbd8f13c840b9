"""The torchpipe systems run the real omniback core: Python and C++ backends, in-process
(``torchpipe``) and behind pipebench's Thrift server (``torchpipe+thrift``)."""

from __future__ import annotations

import numpy as np
import pytest

from engines.thrift.gen.pipebench_rpc.ttypes import InferenceError
from engines.workloads import create_workload
from harness.system import create_system
from tests.conftest import server_processes

BACKENDS = ["python", "Identity", "Identities"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_torchpipe_backends_echo(backend, make_scenario):
    scenario = make_scenario(
        systems=[{"name": "torchpipe", "options": {"backend": backend}}],
        serving={"instances": 2, "batching_timeout_ms": 2, "max_batch": 4},
    )
    request = create_workload("echo", {"payload": "HelloWorld"}).make_request()
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(10)
        reply = system.client().call(request)
    assert reply.dtype == np.uint8 and reply.tobytes() == b"HelloWorld"


@pytest.mark.parametrize("backend", ["python", "Identity"])
def test_torchpipe_echoes_a_bytes_element(backend, make_scenario):
    workload = {"name": "echo", "payload": "Hi, pipebench!", "type": "bytes"}
    scenario = make_scenario(
        systems=[{"name": "torchpipe", "options": {"backend": backend}}], workload=workload
    )
    request = create_workload("echo", {"payload": "Hi, pipebench!", "type": "bytes"}).make_request()
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(10)
        reply = system.client().call(request)
    assert reply.dtype == object and reply.shape == (1,) and reply[0] == b"Hi, pipebench!"


@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["uint8", "bytes"])
def test_torchpipe_thrift_replies_byte_for_byte(backend, kind, make_scenario):
    """A real server process; every client's reply is its request, byte for byte."""
    workload = {"name": "echo", "payload": "Hi, pipebench!", "type": kind}
    scenario = make_scenario(
        systems=[{"name": "torchpipe+thrift", "options": {"backend": backend}}],
        workload=workload,
        serving={"instances": 2, "batching_timeout_ms": 1, "max_batch": 4},
    )
    echo = create_workload("echo", {k: v for k, v in workload.items() if k != "name"})
    request = echo.make_request()
    system = create_system(scenario.systems[0], scenario)
    try:
        system.start()
        system.ready(60)
        assert system.server_pids() and server_processes()
        clients = [system.client() for _ in range(3)]
        for client in clients:
            for _ in range(3):
                reply = client.call(request)
                assert reply.dtype == request.dtype and reply.shape == request.shape
                assert reply.reshape(-1).tolist() == request.reshape(-1).tolist()
            client.close()
        assert system.stats() == {}
        system.check_alive()
    finally:
        system.stop()
        system.stop()  # idempotent
    assert not server_processes()


@pytest.mark.usefixtures("no_leaks")
def test_torchpipe_thrift_reports_a_request_the_core_cannot_take(make_scenario):
    """DLPack has no datetimes: the core's error reaches the client, and the server lives on."""
    scenario = make_scenario(
        systems=[{"name": "torchpipe+thrift", "options": {"backend": "python"}}],
        workload={"name": "echo", "payload": "HelloWorld"},
    )
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(60)
        client = system.client()
        with pytest.raises(InferenceError, match=r"BufferError: DLPack only supports"):
            client.call(np.zeros(2, dtype="datetime64[s]"))
        assert client.call(np.frombuffer(b"again", np.uint8)).tobytes() == b"again"
        client.close()
