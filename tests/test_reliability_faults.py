"""Faults during a run: a dead server, a stalled server, a backend that sometimes raises.

The system under fault must fail (or count its failures) with a clear message, never hang,
and the other systems' results must be kept. test_cli.py covers a killed ``thrift``
server; here the same for ``pipe+thrift`` and ``triton`` (whose stubs are orphaned when
the server dies), plus a stopped (SIGSTOP) server and a backend that fails 1 % of calls.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from engines.workloads import create_workload
from harness.system import create_system
from tests.cli_helpers import (
    STUB,
    THRIFT,
    TRITON,
    RunWatcher,
    only_result,
    read_until,
    wait_for_child,
)
from tests.conftest import hello_scenario
from tests.test_reliability_teardown import short_load

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.mark.parametrize(("system", "server"), [("pipe+thrift", THRIFT), ("triton", TRITON)])
def test_a_killed_server_fails_its_points_and_keeps_the_other_systems(
    system, server, write_scenario, tmp_path, bench_run
):
    scenario = hello_scenario(systems=[system, "pipe"], load=short_load(2, duration_s=3))
    run = bench_run("run", str(write_scenario(scenario)), "--results-dir", str(tmp_path / "r"))
    watcher = RunWatcher(run.pid)
    victim = wait_for_child(run.pid, server)
    if server == TRITON:
        wait_for_child(run.pid, STUB)
    before = read_until(run, "client ceiling")  # printed as its first point begins
    watcher.sample()  # the stubs the kill orphans
    victim.kill()
    _, after = run.communicate(timeout=120)
    stderr = before + after
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr
    watcher.assert_nothing_left()  # incl. Triton's stub, orphaned by the kill
    records = {(r["label"], r["clients"]): r for r in only_result(tmp_path / "r")["records"]}
    died = f"{system}: server exited with code -9; last lines of its log:"
    assert records[system, 2]["failure"].startswith(died)
    assert records["pipe", 2]["failure"] is None and records["pipe", 2]["ok"] > 0


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("thrift", {}),
        ("pipe+thrift", {}),
        ("triton", {"protocol": "http"}),
        ("triton", {"protocol": "grpc"}),
    ],
)
def test_a_stopped_server_times_out_at_the_request_deadline(name, options, make_scenario):
    deadline_s = 1.0
    load = {"clients": [1], "request_timeout_s": deadline_s}
    scenario = make_scenario(systems=[{"name": name, "options": options}], load=load)
    request = create_workload("echo", {}).make_request()
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(60)
        client = system.client()
        client.call(request)
        (server,) = system.server_pids()
        os.kill(server, signal.SIGSTOP)
        try:
            _wait_until_stopped(server)
            started = time.monotonic()
            with pytest.raises(Exception) as raised:  # each client raises its own type
                client.call(request)
            took = time.monotonic() - started
        finally:
            os.kill(server, signal.SIGCONT)
            client.close()
    assert deadline_s * 0.95 <= took <= deadline_s + 1.0, f"{took:.2f} s: {raised.value!r}"


def _wait_until_stopped(pid: int) -> None:
    """SIGSTOP takes effect as each thread next runs: on a busy machine, not at once."""
    deadline = time.monotonic() + 5
    while True:
        states = [
            stat.read_text().rsplit(")", 1)[1].split()[0]
            for stat in Path(f"/proc/{pid}/task").glob("*/stat")
        ]
        if all(state in "tT" for state in states):
            return
        assert time.monotonic() < deadline, f"the server did not stop: {states}"
        time.sleep(0.01)


def test_a_stopped_server_ends_the_run_instead_of_hanging(write_scenario, tmp_path, bench_run):
    load = {**short_load(2, duration_s=3), "request_timeout_s": 1.0}
    scenario = hello_scenario(systems=["thrift"], load=load)
    run = bench_run("run", str(write_scenario(scenario)), "--results-dir", str(tmp_path / "r"))
    watcher = RunWatcher(run.pid)
    server = wait_for_child(run.pid, THRIFT)
    read_until(run, "client ceiling")  # printed as its first point begins
    server.suspend()
    started = time.monotonic()
    _, stderr = run.communicate(timeout=120)
    took = time.monotonic() - started
    assert run.returncode == 1, stderr
    watcher.assert_nothing_left()  # stop() must wake the stopped server to end it
    (stalled,) = only_result(tmp_path / "r")["records"]
    # Either its requests were counted as timeouts, or a timed-out request failed it.
    assert stalled["timeouts"] > 0 or "timeout" in stalled["failure"], stalled
    assert took < 30, f"the run took {took:.0f} s after the server stopped"


#: A workload that raises on every 100th computation, registered in the harness's process
#: (the pipe system runs the workload there).
FLAKY = """
import itertools, sys
from engines.workloads import REGISTRY
from engines.workloads.echo import Echo

calls = itertools.count(1)

class Flaky(Echo):
    def compute(self, batch):
        if next(calls) % 100 == 50:
            raise RuntimeError("injected failure")
        return super().compute(batch)

sys.modules["flaky_plugin"] = sys.modules[__name__]
REGISTRY["flaky"] = "flaky_plugin:Flaky"
"""


def test_a_backend_failing_one_percent_is_counted_and_the_engine_keeps_serving(
    write_scenario, tmp_path, bench_run
):
    scenario = hello_scenario(
        workload={"name": "flaky", "payload": "HelloWorld"},
        systems=["pipe"],
        load=short_load(4, 2, duration_s=1.2),
    )
    run = bench_run(
        "run", str(write_scenario(scenario)), "--results-dir", str(tmp_path), prelude=FLAKY
    )
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr  # errors are results, not a failed system
    for record in only_result(tmp_path)["records"]:
        assert record["failure"] is None
        assert record["sent"] == record["ok"] + record["errors"] + record["timeouts"]
        assert record["timeouts"] == 0
        assert 0.005 <= record["errors"] / record["sent"] <= 0.02, record
        assert record["first_error"] == "RuntimeError: injected failure"
        assert record["ok"] > 1000  # served on after each failure, at both points
        assert "errors" in record["invalid_reasons"]
