"""Load hosts as Ray actors on a local simulated cluster: placement, the exact merge across
nodes, clock offsets, a node lost mid-point, whole runs on a chosen node, and teardown.

Marked ``cluster`` (``pytest -m cluster`` runs them alone; ``-m 'not cluster'`` skips them).
One local cluster of two load nodes is shared by the module (starting one takes seconds);
the command-line tests start their own, as a user's run does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from harness.distributed.cluster import current, open_cluster
from harness.distributed.host import RayHost
from harness.distributed.remote import run_on_node
from harness.errors import SystemFailure
from harness.loadgen import drive, plans
from harness.measurement import OK, Timing
from harness.runner import RunOptions
from harness.scenario import load_scenario
from harness.storage import ResultStore
from harness.system import create_system
from harness.turn import client_processes, threads_here
from tests.cli_helpers import BENCH, THRIFT, RunWatcher, cmdline, read_until
from tests.conftest import ROOT, hello_scenario

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.cluster

REQUEST = np.frombuffer(b"HelloWorld", dtype=np.uint8)
TIMING = Timing(warmup_s=0.2, window_s=0.3, max_windows=3, stability_pct=1000)
RAY_PROCESS = ("raylet", "gcs_server")


class SleepyClient:
    """Replies after about a millisecond: a known, light load for the load nodes."""

    def call(self, request: np.ndarray) -> np.ndarray:
        time.sleep(0.001)
        return request

    def close(self) -> None:
        pass


def ray_processes(root: int) -> list[psutil.Process]:
    try:
        tree = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in tree if any(name in cmdline(p) for name in RAY_PROCESS)]


@pytest.fixture(scope="module")
def session():
    with open_cluster("local:2") as opened:
        yield opened
    assert current() is None
    assert not ray_processes(os.getpid()), "Ray processes left after the cluster closed"


def _hosts(session, senders: int) -> list[RayHost]:
    count = session.host_count(1)
    return session.hosts(SleepyClient, [REQUEST] * count, plans("closed", senders, count, 5.0))


def _alive_actors() -> int:
    from ray._private.state import actors

    return sum(1 for actor in actors().values() if actor["State"] != "DEAD")


def _wait_no_actors(deadline_s: float = 30.0) -> int:
    deadline = time.monotonic() + deadline_s
    while (alive := _alive_actors()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def test_load_goes_to_every_load_node_and_never_to_the_coordinators(session):
    nodes = session.load_nodes()
    own = ray.get_runtime_context().get_node_id()
    assert len(nodes) == 2
    assert own not in {node.node_id for node in nodes}
    hosts = _hosts(session, 4)
    try:
        # Round-robin, each actor where it was asked to be (wait_ready checked it there).
        assert [host.node.index for host in hosts] == [0, 1]
        assert [host.plan.senders for host in hosts] == [2, 2]
    finally:
        for host in hosts:
            host.close()
    assert _wait_no_actors() == 0


def test_samples_merge_exactly_across_nodes(session):
    hosts = _hosts(session, 4)
    try:
        run = drive(hosts, TIMING, 5.0)
    finally:
        for host in hosts:
            host.close()
    parts = [np.sort(np.concatenate([p.start_ns for p in host.parts])) for host in hosts]
    assert all(part.size > 100 for part in parts), "every node sent"
    # The merge is a concatenation: every node's sample, each exactly once.
    merged = np.sort(run.samples.start_ns)
    assert np.array_equal(merged, np.sort(np.concatenate(parts)))
    reports = [host.report(run, TIMING.window_s) for host in hosts]
    measured = run.measured()
    assert sum(r["sent"] for r in reports) == len(measured)
    assert sum(r["ok"] for r in reports) == measured.count(OK) == len(measured)
    # Send times are on the coordinator's clock: inside the run, ordered within a sender.
    begin, end = run.boundaries_ns[0] - TIMING.warmup_s * 1e9, run.boundaries_ns[-1]
    assert begin - 5e6 <= merged[0] and merged[-1] < end
    for report in reports:
        assert report["client_cpu_pct"] is not None and report["client_cpu_pct"] > 0


def test_offsets_on_one_machine_are_zero_within_their_uncertainty(session):
    hosts = _hosts(session, 2)
    try:
        for host in hosts:
            offset = host.offset
            # One machine, one CLOCK_MONOTONIC: the true offset is 0 and the measurement
            # brackets it (the node read its clock between our two readings).
            assert abs(offset.offset_ns) <= offset.uncertainty_ns
            assert 0 < offset.uncertainty_ns < 50_000_000
            assert abs(offset.wall_offset_ns) <= offset.uncertainty_ns + 1_000_000
            assert not offset.suspect(TIMING.window_s)
    finally:
        for host in hosts:
            host.close()


def test_a_load_actor_killed_mid_point_fails_it_with_one_line(session):
    hosts = _hosts(session, 2)
    killed = []

    def kill_once(elapsed_s: float) -> None:
        if not killed and elapsed_s > TIMING.warmup_s + TIMING.window_s / 2:
            ray.kill(hosts[0]._actor, no_restart=True)
            killed.append(elapsed_s)

    try:
        with pytest.raises(SystemFailure) as failure:
            drive(hosts, Timing(0.2, 0.5, 6, 1000), 5.0, on_tick=kill_once)
    finally:
        for host in hosts:
            host.close()
    message = str(failure.value)
    assert killed
    assert "\n" not in message
    assert message.startswith("load node 0 (") and "lost during collect" in message
    assert _wait_no_actors() == 0
    assert len(session.load_nodes()) == 2  # the node itself lives on


def test_a_whole_run_goes_to_the_node_with_the_resources(session, write_scenario, tmp_path):
    data = hello_scenario(systems=["pipe"])
    data["load"].update(clients=[1], repeats=1, max_repeats=1, duration_s=0.3)
    path = write_scenario(data)
    store = ResultStore(tmp_path, "result")
    options = RunOptions(warmup_s=0.1)
    result = run_on_node(session, {"local_node_1": 1}, load_scenario(path), path, store, options)
    there = result.environment.cluster_node
    wanted = next(n for n in ray.nodes() if "local_node_1" in n["Resources"])
    assert there["node_id"] == wanted["NodeID"]
    written = json.loads(store.path.read_text())
    assert written["complete"] and written["records"][0]["ok"] > 0
    assert written["environment"]["cluster_node"]["node_id"] == wanted["NodeID"]


def _of_cluster(process: psutil.Process, folder: str) -> bool:
    try:
        return folder in cmdline(process) or process.environ().get("RAY_TMPDIR") == folder
    except psutil.Error:
        return False


def _load_actors_on(root: int, resource: str) -> dict[int, psutil.Process]:
    """Load actors (Ray workers titled ``ray::LoadNode...``) under the raylet of the node
    offering ``resource``, by PID, with that raylet as the value."""
    found = {}
    for process in psutil.Process(root).children(recursive=True):
        parent = process.parent() if "LoadNode" in cmdline(process) else None
        if parent is not None and resource in cmdline(parent):
            found[process.pid] = parent
    return found


def _wait_until_served(root: int, cpu_s: float, timeout: float = 120) -> None:
    """Until the Thrift server under ``root`` has spent ``cpu_s`` more CPU seconds than now
    (idle, it spends none; on a busy machine it gets about 0.05 s a second): it is serving
    the turn's load, so every load node has started (the load actors send only once all of
    them are ready). The run's own event, however long a busy machine takes to start them."""
    servers = [p for p in psutil.Process(root).children(recursive=True) if THRIFT in cmdline(p)]
    server = max(servers, key=lambda p: p.create_time())  # the turn's, not one stopping
    busy = sum(server.cpu_times()[:2])
    deadline = time.monotonic() + timeout
    while sum(server.cpu_times()[:2]) < busy + cpu_s:
        assert time.monotonic() < deadline, f"the Thrift server not serving within {timeout} s"
        time.sleep(0.05)


def test_a_killed_raylet_fails_its_point_keeps_the_rest_and_leaves_nothing(
    write_scenario, tmp_path
):
    data = hello_scenario(systems=["thrift", "pipe"])  # thrift's turn comes first
    data["load"].update(clients=[2, 3], repeats=1, max_repeats=1, warmup_s=0.2, duration_s=6)
    path = write_scenario(data)
    run = subprocess.Popen(
        [*BENCH, "run", str(path), "--cluster", "local:2", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The client ceilings run on the load nodes too (thrift's, then pipe's); then the
        # round begins with thrift's turn.
        read_until(run, "client ceiling (threads")
        before = _load_actors_on(run.pid, "local_node_0")
        deadline = time.monotonic() + 120
        while not (new := set(_load_actors_on(run.pid, "local_node_0")) - set(before)):
            assert time.monotonic() < deadline, "no load actor of thrift's turn on node 0"
            time.sleep(0.05)
        raylet = _load_actors_on(run.pid, "local_node_0")[new.pop()]
        folder = re.search(r"(/\S*?pipebench-ray-[^/\s]+)", cmdline(raylet))
        raylet_node = re.search(r"--node_id=(\w+)", cmdline(raylet))
        _wait_until_served(run.pid, cpu_s=0.05)  # every node started: the turn is sending
        raylet.kill()
        _, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 1, err
    result = json.loads(next(tmp_path.glob("test_hello-*.json")).read_text())
    records = {(r["label"], r["clients"]): r for r in result["records"]}
    assert records["pipe", 2]["failure"] is None and records["pipe", 2]["ok"] > 0
    reason = records["thrift", 2]["failure"]
    assert reason and "\n" not in reason, reason
    assert re.match(r"load node \d \(.*\) lost during (collect|finish): ", reason), reason
    # The next point runs again, on the node still alive.
    again = records["thrift", 3]
    assert again["failure"] is None and again["ok"] > 0, again["failure"]
    assert again["sent"] == again["ok"] + again["errors"] + again["timeouts"]
    (node,) = again["server_stats"]["load_nodes"]
    assert raylet_node is not None and node["node_id"] != raylet_node.group(1)
    assert node["sent"] > 0
    assert folder is not None and not Path(folder.group(1)).exists()
    # Retitled (ray::DashboardAgent...) and orphaned by the killed raylet, its processes
    # name the folder only in their environment.
    left = [p.pid for p in psutil.process_iter() if _of_cluster(p, folder.group(1))]
    assert not left, "Ray processes left running"


def test_sigterm_stops_a_cluster_run_as_ctrl_c_does_and_leaves_nothing(write_scenario, tmp_path):
    """``ray.init`` makes the driver's SIGTERM handler ``sys.exit(15)``: the run exited 15
    from wherever it was, saved nothing and said nothing. Sent during a turn whose load is
    on the load nodes, SIGTERM must act as Ctrl-C does: servers and cluster stopped,
    partial results saved and named, exit 130."""
    data = hello_scenario(systems=["thrift"])
    data["load"].update(clients=[2], repeats=1, max_repeats=1, warmup_s=0.1, duration_s=60)
    path = write_scenario(data)
    run = subprocess.Popen(
        [*BENCH, "run", str(path), "--cluster", "local:2", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = RunWatcher(run.pid)
    try:
        read_until(run, "client ceiling")
        _wait_until_served(run.pid, cpu_s=0.05)  # every load node started: the turn is sending
        watcher.sample()
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    document = next(tmp_path.glob("test_hello-*.json"))
    last = stderr.strip().splitlines()[-1]
    assert last == f"interrupted: servers stopped, partial results saved: {document}"
    assert json.loads(document.read_text())["complete"] is False
    assert watcher.named("ray::LoadNode") and watcher.named(THRIFT)
    watcher.owned_paths.add(f"/tmp/pipebench-*-{run.pid}-*")  # the local cluster's folder
    watcher.assert_nothing_left(within=60)


#: A driver that stops its local cluster, then writes into the cluster's folder again, as
#: Ray's code in a long-lived driver (a test session, a benchmark) was seen to do: an empty
#: ``ray/session_*`` folder appeared after the teardown and stayed.
LATE_WRITER = """
import glob, os, sys
from harness.distributed.cluster import open_cluster
with open_cluster("local:1"):
    folder = glob.glob(f"/tmp/pipebench-ray-{os.getpid()}-*")[0]
os.makedirs(os.path.join(folder, "ray", "session_late"))
print(folder, flush=True)
"""


def test_a_cluster_folder_written_again_after_the_teardown_goes_when_the_driver_exits():
    driver = subprocess.run(
        [sys.executable, "-c", LATE_WRITER], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert driver.returncode == 0, driver.stderr
    folder = Path(driver.stdout.split()[-1])
    deadline = time.monotonic() + 60  # its watchdog notices the exit and removes it
    while folder.exists():
        assert time.monotonic() < deadline, f"{folder} left after its driver exited"
        time.sleep(0.05)


def test_turns_whose_load_goes_to_the_cluster_are_never_sliced_here(session, make_scenario):
    """One sender makes one load host: still an actor on a load node, never a thread of
    the harness (which alone can be interleaved with other systems' threads)."""
    scenario = make_scenario(systems=["thrift", "pipe"], load={"clients": [1]})
    thrift, pipe = (create_system(spec, scenario) for spec in scenario.systems)
    thrift.start()
    try:
        thrift.ready(60)
        assert client_processes(thrift, scenario.load, 1) == 1
        assert not threads_here(thrift, scenario.load, 1)
        assert threads_here(pipe, scenario.load, 1)  # in-process: driven from here
    finally:
        thrift.stop()
