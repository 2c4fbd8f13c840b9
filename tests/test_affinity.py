"""CPU placement: what each mode pins, that a real server's whole process tree lands on the
server CPUs, that the harness gets its own CPUs back, and that a run records it."""

from __future__ import annotations

import os

import psutil
import pytest

from harness.affinity import pin_threads, plan
from harness.rounds import Contender
from harness.runner import run_scenario
from harness.storage import ResultStore
from tests.conftest import hello_scenario

pytestmark = pytest.mark.usefixtures("no_leaks")

CPUS = os.sched_getaffinity(0)
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to place apart")


@pytest.mark.parametrize(
    ("affinity", "cpus", "expected"),
    [
        ("auto", [0, 1], ("shared", [1], [1])),
        ("auto", [0, 1, 2, 3, 4, 5], ("split", [0, 1, 2], [3, 4, 5])),
        ("auto", [3], ("none", [3], [3])),
        ("shared", [2, 5, 7], ("shared", [7], [7])),
        ("split", [0, 1], ("split", [0], [1])),
        ("split", [4], ("none", [4], [4])),
        ("none", [0, 1], ("none", [0, 1], [0, 1])),
    ],
)
def test_each_mode_places_harness_and_servers(affinity, cpus, expected):
    placement = plan(affinity, cpus)
    described = placement.describe()
    assert (described["mode"], described["harness_cpus"], described["server_cpus"]) == expected


@needs_two
def test_applied_pins_every_thread_and_gives_the_cpus_back():
    placement = plan("split")
    original = os.sched_getaffinity(0)
    with placement.applied():
        for tid in os.listdir("/proc/self/task"):
            assert os.sched_getaffinity(int(tid)) == set(placement.harness_cpus)
    assert os.sched_getaffinity(0) == original


@needs_two
def test_a_started_servers_process_tree_runs_on_the_server_cpus(make_scenario):
    """Triton's server and its Python-backend stub (a child) both move to the server CPUs."""
    placement = plan("split")
    scenario = make_scenario(systems=["triton"])
    contender = Contender.create(scenario, scenario.systems[0], placement)
    with placement.applied():
        contender.start(first=False)
        try:
            (pid,) = contender.system.server_pids()
            family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            assert len(family) >= 2  # tritonserver and its stub
            for member in family:
                for thread in member.threads():
                    assert os.sched_getaffinity(thread.id) == set(placement.server_cpus)
        finally:
            contender.stop()


def test_a_run_records_where_it_ran(make_scenario, tmp_path):
    load = {**hello_scenario()["load"], "clients": [1], "affinity": "shared"}  # short turns
    scenario = make_scenario(systems=["pipe"], load=load)
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, scenario.name))
    placement = result.environment.measurement["placement"]
    assert placement == {"mode": "shared", "harness_cpus": [max(CPUS)], "server_cpus": [max(CPUS)]}
    assert result.environment.measurement["cpu_affinity"] == [max(CPUS)]
    assert os.sched_getaffinity(0) == CPUS  # given back after the run


def test_pinning_a_thread_that_has_exited_is_not_an_error():
    pin_threads(2**22 + 12345, CPUS)  # no such process: nothing to do, no exception
