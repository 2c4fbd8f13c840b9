"""Servers on cluster nodes: a system started by an actor on the node with the resources it
asks for, bound to that node's address, its load on the other nodes, and stopped with its
actor however the actor ends.

Marked ``cluster`` (``pytest -m cluster``). On ``local:2`` every node's address is this
machine's, so placement is asserted through Ray's node ids and the process tree: the
server must be a child of the actor, itself a worker of the chosen node's raylet.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from engines.workloads import create_workload
from harness.distributed.cluster import open_cluster
from harness.distributed.server import NodeSystem
from harness.errors import SystemFailure
from harness.scenario import NodePlacement, SystemSpec
from harness.system import create_system
from harness.turn import measure_turn
from tests.cli_helpers import (
    BENCH,
    THRIFT,
    RunWatcher,
    cmdline,
    only_result,
    wait_for_child,
)
from tests.conftest import ROOT, hello_scenario

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

REQUEST = np.frombuffer(b"HelloWorld", dtype=np.uint8)
RAY_FOLDER = re.compile(r"(/\S*?pipebench-ray-[^/\s]+)")


@pytest.fixture(scope="module")
def session():
    with open_cluster("local:2") as opened:
        yield opened


def _node_offering(resource: str) -> dict:
    return next(node for node in ray.nodes() if resource in node["Resources"])


def _thrift_on(scenario, resource: str) -> NodeSystem:
    spec = SystemSpec(name="thrift", node=NodePlacement(resources={resource: 1}))
    system = create_system(spec, scenario)
    assert isinstance(system, NodeSystem)
    return system


def _servers_under(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if THRIFT in cmdline(p)]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids: list[int], deadline_s: float = 30.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_server_runs_on_the_chosen_node_under_its_actor_bound_to_its_address(
    session, make_scenario
):
    load = {"clients": [2], "warmup_s": 0.1, "duration_s": 0.6, "repeats": 1, "max_repeats": 1}
    scenario = make_scenario(systems=["thrift"], load=load)
    system = _thrift_on(scenario, "local_node_1")
    wanted = _node_offering("local_node_1")
    system.start()
    try:
        system.ready(120)
        placed = system.stats()["server_node"]
        assert placed["node_id"] == system.node_id == wanted["NodeID"]
        assert system.host == placed["address"] == wanted["NodeManagerAddress"]
        actor = psutil.Process(placed["actor_pid"])
        assert "local_node_1" in cmdline(actor.parent()), "the actor is a worker of node 1"
        (server,) = _servers_under(actor.pid)
        assert server.ppid() == actor.pid
        listening = [c.laddr for c in server.net_connections() if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == system.host for addr in listening)
        assert system.server_cpu_seconds() is not None
        client = system.client()
        try:
            assert bytes(client.call(REQUEST)) == b"HelloWorld"
        finally:
            client.close()
        # Its load runs on the other load node only.
        workload = create_workload("echo", {"payload": "HelloWorld"})
        run = measure_turn(system, None, workload, scenario.load, 2, seed=1)
        assert run.load_nodes and run.samples.count(0) > 0
        other = _node_offering("local_node_0")["NodeID"]
        assert {node["node_id"] for node in run.load_nodes} == {other}
    finally:
        system.stop()
    assert _gone([server.pid, actor.pid])


def test_a_killed_server_actor_takes_its_server_along(session, make_scenario):
    system = _thrift_on(make_scenario(systems=["thrift"]), "local_node_0")
    system.start()
    try:
        system.ready(120)
        actor = psutil.Process(system.stats()["server_node"]["actor_pid"])
        (server,) = _servers_under(actor.pid)
        actor.kill()  # as if it crashed, or Ray killed it when the driver died
        assert _gone([server.pid]), "the server outlived its actor"
        with pytest.raises(SystemFailure) as lost:
            system.check_alive()
        assert "\n" not in str(lost.value) and "lost during check_alive" in str(lost.value)
    finally:
        system.stop()


def test_a_server_asking_for_what_no_node_offers_is_bad_input(session, make_scenario):
    from harness.errors import InputError

    with pytest.raises(InputError, match="no alive node of the cluster offers GPU=8"):
        create_system(
            SystemSpec(name="thrift", node=NodePlacement(resources={"GPU": 8})),
            make_scenario(systems=["thrift"]),
        )


def _run_args(path, results) -> list[str]:
    return [*BENCH, "run", str(path), "--cluster", "local:2", "--results-dir", str(results)]


def test_a_run_with_its_server_on_a_node_records_where_and_leaves_nothing(write_scenario, tmp_path):
    # Two servers asking for the node's only unit of local_node_1 share the node (the
    # resources choose it, they are not held), and pipe stays in the harness.
    data = hello_scenario(systems=["thrift", {"name": "thrift", "label": "thrift-b"}, "pipe"])
    data["load"].update(clients=[2], repeats=1, max_repeats=1, duration_s=0.6)
    path = write_scenario(data)
    run = subprocess.Popen(
        [*_run_args(path, tmp_path), "--server-resources", "local_node_1=1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = RunWatcher(run.pid)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    # Every process of the run (Ray's, its workers, the servers they started) is gone, and
    # so are their temp folders: the cluster's and the run folders of the workers' harness.
    assert watcher.named("ray::LoadNode") and watcher.named(THRIFT)
    watcher.assert_nothing_left()
    result = only_result(tmp_path)
    records = {r["label"]: r for r in result["records"]}
    thrift, pipe = records["thrift"], records["pipe"]
    placed = thrift["server_stats"]["server_node"]
    assert placed["resources"] == {"local_node_1": 1.0}
    other = records["thrift-b"]["server_stats"]["server_node"]
    assert other["node_id"] == placed["node_id"] and other["actor_pid"] != placed["actor_pid"]
    assert records["thrift-b"]["failure"] is None
    assert thrift["sent"] == thrift["ok"] + thrift["errors"] + thrift["timeouts"] > 0
    # Its clients ran on the other load node; pipe (in-process) stayed here.
    (load_node,) = thrift["server_stats"]["load_nodes"]
    assert load_node["node_id"] != placed["node_id"] and load_node["sent"] > 0
    assert pipe["ok"] > 0 and "server_node" not in pipe["server_stats"]
    scenario = result["scenario"]["systems"]
    node = {"resources": {"local_node_1": 1.0}}
    assert [s.get("node") for s in scenario] == [node, node, None]


def test_a_killed_driver_takes_the_cluster_and_the_server_on_a_node_along(write_scenario, tmp_path):
    data = hello_scenario(systems=["thrift"])
    data["load"].update(clients=[2], repeats=1, max_repeats=1, duration_s=60)
    path = write_scenario(data)
    run = subprocess.Popen(
        [*_run_args(path, tmp_path), "--server-resources", "local_node_0=1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = wait_for_child(run.pid, THRIFT, timeout=120)
        family = psutil.Process(run.pid).children(recursive=True)
    finally:
        run.kill()
        run.wait()
    folders = {m.group(1) for p in family if (m := RAY_FOLDER.search(cmdline(p)))}
    # The server goes with its actor at once (its watchdog); Ray's processes follow their
    # raylets (the kernel ends those with the driver) as their own checks notice, or the
    # cluster folder's watchdog SIGKILLs them after its grace (its agents would take about
    # a minute: retitled, they name the folder only in the log files they hold open).
    assert _gone([server.pid]), "the server outlived the driver"
    assert _gone([p.pid for p in family], deadline_s=180), [
        cmdline(p) for p in family if _alive(p.pid)
    ]
    assert folders and not any(Path(folder).exists() for folder in folders)
