"""The torchpipe system runs the real omniback core: Python and C++ backends."""

from __future__ import annotations

import numpy as np
import pytest

from engines.workloads import create_workload
from harness.system import create_system


@pytest.mark.parametrize("backend", ["python", "Identity", "Identities"])
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
