"""The torchpipe systems run the real omniback core: Python and C++ backends, in-process
(``torchpipe``) and behind pipebench's Thrift server (``torchpipe+thrift``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from engines.thrift.gen.pipebench_rpc.ttypes import InferenceError
from engines.torchpipe.full import DecodeMatCall, unavailable
from engines.workloads import create_workload
from engines.workloads.jpeg import GREETING
from harness.equivalence import check_equivalent
from harness.system import SystemUnavailable, create_system
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


# -- the full torchpipe wheel: DecodeMat ------------------------------------------------------
#: Why DecodeMat cannot run here (``None``: it can): the full wheel is an optional extra.
NO_DECODE_MAT = unavailable()
needs_decode_mat = pytest.mark.skipif(
    NO_DECODE_MAT is not None, reason=f"torchpipe DecodeMat: {NO_DECODE_MAT}"
)
JPEG_SERVING = {"instances": 2, "batching_timeout_ms": 0, "max_batch": 1}


@needs_decode_mat
def test_decodemat_pixels_equal_cv2s():
    call = DecodeMatCall(JPEG_SERVING, {"name": "jpeg", "options": {"quality": 80}})
    pixels, reference = call.decode(), call.workload.decode()
    assert pixels.dtype == np.uint8 and pixels.shape == (444, 640, 3)
    assert np.array_equal(pixels, reference)  # same pixels, no tolerance needed


@needs_decode_mat
@pytest.mark.usefixtures("no_leaks")
def test_torchpipe_thrift_decodemat_passes_the_equivalence_check(make_scenario):
    spec = {"name": "torchpipe+thrift", "options": {"backend": "DecodeMat"}}
    scenario = make_scenario(systems=[spec], workload={"name": "jpeg"}, serving=JPEG_SERVING)
    work = create_workload("jpeg", {})
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(120)
        check_equivalent(system, scenario.systems[0], work)
        assert system.client().call(work.make_request()).tobytes() == GREETING.encode()
    assert not server_processes()


def test_decodemat_without_the_full_wheel_says_why_before_starting(make_scenario, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in ("torch", "torchpipe") else real_find_spec(name, *args),
    )
    spec = {"name": "torchpipe+thrift", "label": "tp-c++", "options": {"backend": "DecodeMat"}}
    scenario = make_scenario(systems=[spec], workload={"name": "jpeg"})
    system = create_system(scenario.systems[0], scenario)
    with pytest.raises(SystemUnavailable) as skip:
        system.start()
    system.stop()
    assert str(skip.value) == (
        "the full torchpipe wheel is not installed (no torch): scripts/bootstrap.sh all"
    )
    assert not server_processes()
