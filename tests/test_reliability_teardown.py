"""Whatever ends a run, everything it started is gone within 5 s and its results are kept.

Each test runs the real ``bench`` CLI and watches its whole process tree (servers, Triton's
Python stubs, the watchdogs) and what those processes own (logs, work folders, /dev/shm
regions of that launch's prefix). test_cli.py covers SIGINT/SIGTERM during a Thrift system;
here the signal lands while Triton (with two stub processes) is being measured, the harness
is SIGKILLed, and one system raises mid-run.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psutil
import pytest

from engines.triton.server import PYTHON_ENVS
from tests.cli_helpers import (
    STUB,
    THRIFT,
    TRITON,
    RunWatcher,
    alive,
    cmdline,
    only_result,
    python_envs_made_between,
    read_until,
    wait_for_child,
)
from tests.conftest import ROOT, hello_scenario

pytestmark = pytest.mark.usefixtures("no_leaks")
TWO_STUBS = {"instances": 2, "batching_timeout_ms": 0, "max_batch": 1}


def short_load(*clients: int, duration_s: float = 0.6) -> dict:
    """One repeat of three windows per point: the fastest measurement the runner makes."""
    return {
        "clients": list(clients),
        "warmup_s": 0.1,
        "duration_s": duration_s,
        "repeats": 1,
        "max_repeats": 1,
        "max_windows": 3,
    }


def test_normal_end_leaves_nothing(write_scenario, tmp_path, bench_run):
    scenario = hello_scenario(
        systems=["pipe+thrift", "triton"], serving=TWO_STUBS, load=short_load(2)
    )
    path = write_scenario(scenario)
    run = bench_run("run", str(path), "--results-dir", str(tmp_path / "r"))
    watcher = RunWatcher(run.pid)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert len(watcher.named(STUB)) >= 2 and watcher.named(THRIFT)
    assert any(p.startswith("/dev/shm/pipebench_") for p in watcher.owned_paths)
    watcher.assert_nothing_left(within=0.5)  # stop() waits: gone when the run returns
    assert only_result(tmp_path / "r")["complete"] is True


#: A system whose server runs fine, then raises mid-run: the harness must still stop it.
EXPLODING = """
from engines.thrift.system import ThriftSystem
from harness.system import REGISTRY

class Exploding(ThriftSystem):
    def stats(self):
        raise RuntimeError("boom: stats exploded")

import sys
sys.modules["exploding_plugin"] = sys.modules[__name__]
REGISTRY["exploding"] = "exploding_plugin:Exploding"
"""


def test_an_exception_in_one_system_stops_it_and_keeps_the_others(
    write_scenario, tmp_path, bench_run
):
    fake_triton = tmp_path / "tritonserver"  # starts a child (like a stub), then fails
    fake_triton.write_text("#!/bin/sh\nsleep 300 &\necho 'no model here' >&2\nsleep 1\nexit 3\n")
    fake_triton.chmod(0o755)
    scenario = hello_scenario(
        systems=[
            "exploding",
            {"name": "triton", "options": {"binary": str(fake_triton)}},
            "pipe",
        ],
        load=short_load(1, 2),
    )
    path = write_scenario(scenario)
    run = bench_run("run", str(path), "--results-dir", str(tmp_path / "r"), prelude=EXPLODING)
    watcher = RunWatcher(run.pid)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert watcher.named(THRIFT) and watcher.named("sleep 300")
    watcher.assert_nothing_left()
    document = only_result(tmp_path / "r")
    assert document["complete"] is True
    records = {(r["label"], r["clients"]): r for r in document["records"]}
    assert records["exploding", 1]["failure"] == "RuntimeError: boom: stats exploded"
    assert records["exploding", 2]["failure"] == "RuntimeError: boom: stats exploded"
    assert records["triton", 1]["failure"].startswith("triton: exited with code 3 before ready")
    assert "no model here" in records["triton", 1]["failure"]
    assert all(records["pipe", n]["failure"] is None and records["pipe", n]["ok"] for n in (1, 2))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_triton_stops_its_stubs_and_keeps_earlier_systems(
    sig, write_scenario, tmp_path, bench_run
):
    # Two points of one round each (thrift's turn, then triton's): the signal lands while
    # the second point is measured; the first point's records are kept.
    scenario = hello_scenario(
        systems=["thrift", "triton"],
        serving=TWO_STUBS,
        load=short_load(1, 2, duration_s=3),
    )
    path = write_scenario(scenario)
    run = bench_run("run", str(path), "--results-dir", str(tmp_path / "r"))
    watcher = RunWatcher(run.pid)
    before = read_until(run, "starting triton")
    wait_for_child(run.pid, STUB, count=2)
    before += read_until(run, "triton · 1 clients")  # the first point is saved
    watcher.sample()
    run.send_signal(sig)
    _, after = run.communicate(timeout=120)
    stderr = before + after
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted: servers stopped, partial results saved: " in stderr
    assert len(watcher.named(STUB)) >= 2
    watcher.assert_nothing_left()
    document = only_result(tmp_path / "r")
    assert document["complete"] is False
    saved = [(record["label"], record["ok"] > 0) for record in document["records"]]
    assert saved == [("thrift", True), ("triton", True)]  # the first point, kept


@pytest.mark.parametrize(
    ("system", "server", "helpers"),
    [("pipe+thrift", THRIFT, 0), ("triton", TRITON, 2)],
)
def test_a_killed_harness_takes_its_servers_with_it(
    system, server, helpers, write_scenario, tmp_path, bench_run
):
    scenario = hello_scenario(
        systems=[system], serving=TWO_STUBS, load=short_load(2, duration_s=30)
    )
    run = bench_run("run", str(write_scenario(scenario)), "--results-dir", str(tmp_path))
    watcher = RunWatcher(run.pid)
    wait_for_child(run.pid, server)
    if helpers:
        wait_for_child(run.pid, STUB, count=helpers)
    read_until(run, "client ceiling")  # printed as its first point begins
    watcher.sample()
    run.kill()  # no finally, no atexit: only PR_SET_PDEATHSIG and the watchdog remain
    run.communicate(timeout=60)
    assert len(watcher.named(STUB)) >= helpers and watcher.named(server)
    # Triton gets the time of a graceful shutdown (it removes its python_env_* folder then).
    watcher.assert_nothing_left(within=20)


def _in_run_folder(pid: int, pattern: str, text: str = "") -> bool:
    """A file of the run's temp folder matches ``pattern`` (and holds ``text``)."""
    for path in glob.glob(f"/tmp/pipebench-run-{pid}-*/{pattern}"):
        try:
            with open(path, errors="replace") as file:
                if text in file.read():
                    return True
        except IsADirectoryError:
            return True
        except OSError:
            continue
    return False


def _has_child(pid: int, marker: str) -> bool:
    try:
        return any(marker in cmdline(child) for child in psutil.Process(pid).children(True))
    except psutil.NoSuchProcess:
        return False


#: Moments of Triton's start-up, each the run's own event: its work folder appears, its
#: server process, the server's log line that the model is loading, a new python_env_*
#: folder (the Python backend made it), the first stub, the log line that the model loaded.
TRITON_STARTUP: dict[str, Callable[[int, set[str]], bool]] = {
    "work folder": lambda pid, envs: _in_run_folder(pid, "pipebench-triton-*/"),
    "server": lambda pid, envs: _has_child(pid, TRITON),
    "loading": lambda pid, envs: _in_run_folder(pid, "pipebench-triton-*.log", "loading: "),
    "python_env": lambda pid, envs: bool(set(glob.glob(PYTHON_ENVS)) - envs),
    "first stub": lambda pid, envs: _has_child(pid, STUB),
    "loaded": lambda pid, envs: _in_run_folder(pid, "pipebench-*.log", "successfully loaded"),
}


@pytest.mark.parametrize("moment", list(TRITON_STARTUP))
def test_a_harness_killed_while_triton_starts_leaves_nothing(
    moment, write_scenario, tmp_path, bench_run
):
    """No process, no run folder, no work folder, no shm region and no python_env_* folder
    (which Triton removes only on a graceful shutdown after loading: the watchdog does)."""
    scenario = hello_scenario(systems=["triton"], serving=TWO_STUBS, load=short_load(1))
    envs_before = set(glob.glob(PYTHON_ENVS))
    started = time.time()
    run = bench_run("run", str(write_scenario(scenario)), "--results-dir", str(tmp_path))
    watcher = RunWatcher(run.pid)
    deadline = time.monotonic() + 120
    while not TRITON_STARTUP[moment](run.pid, envs_before):
        assert run.poll() is None, f"the run ended before {moment}: {run.communicate()}"
        assert time.monotonic() < deadline, f"no {moment} within 120 s"
        time.sleep(0.005)
    watcher.sample()
    run.kill()  # no finally, no atexit: only PR_SET_PDEATHSIG and the watchdogs remain
    run.communicate(timeout=60)
    if moment != "work folder":
        assert watcher.named(TRITON)
    watcher.assert_nothing_left(within=30)  # the server's graceful shutdown, then SIGKILL
    made = python_envs_made_between(started, time.time()) - envs_before
    assert not made, f"Python backend folders left: {made}"


#: Starts a server from a worker thread that then ends, and reports the server's PID.
SERVER_FROM_A_THREAD = """
import threading, time
from harness.process import ServerProcess

started = []
worker = threading.Thread(target=lambda: started.append(ServerProcess("sleeper", ["sleep", "300"])))
worker.start()
worker.join()
print(started[0].pid, flush=True)
time.sleep(300)
"""


def test_a_server_started_from_a_thread_outlives_the_thread_not_the_harness():
    """PR_SET_PDEATHSIG fires when the starting *thread* ends: it must not kill a server
    started from a worker thread, while the watchdog still covers a killed harness."""
    harness = subprocess.Popen(
        [sys.executable, "-c", SERVER_FROM_A_THREAD], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert harness.stdout is not None
    try:
        server = psutil.Process(int(harness.stdout.readline()))
        time.sleep(0.5)
        assert alive(server), "the server died with the thread that started it"
    finally:
        harness.kill()
        harness.wait(10)
        harness.stdout.close()
    server.wait(5)  # raises psutil.TimeoutExpired if it is still running


#: A harness whose server SIGKILLs it as the server's program's first act: the earliest
#: moment at which a server exists. From the main thread (the server gets PR_SET_PDEATHSIG,
#: which does not reach its child) or from a worker thread (it gets none).
KILLED_BY_ITS_SERVER = """
import os, sys, threading, time
from harness.process import ServerProcess

env = {**os.environ, "PIPEBENCH_TEST_MARK": sys.argv[1]}
start = lambda: ServerProcess("killer", ["sh", "-c", "kill -KILL $PPID; sleep 300"], env=env)
if sys.argv[2] == "thread":
    threading.Thread(target=start).start()
else:
    start()
time.sleep(300)
"""


def _marked(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("PIPEBENCH_TEST_MARK") == mark and alive(process):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_harness_killed_the_moment_its_server_starts_leaves_nothing():
    """The watchdog starts before the server: no moment exists between the two at which a
    SIGKILL of the harness leaves the server (or the child it started) running. Four
    harnesses at once, two starting their server from the main thread, two from another."""
    marks = [f"pipebench-test-{os.getpid()}-{index}" for index in range(4)]
    harnesses = [
        subprocess.Popen(
            [sys.executable, "-c", KILLED_BY_ITS_SERVER, mark, ("main", "thread")[index % 2]],
            cwd=ROOT,
        )
        for index, mark in enumerate(marks)
    ]
    for harness in harnesses:
        assert harness.wait(60) == -signal.SIGKILL  # its server killed it
    run_folders = [f"/tmp/pipebench-run-{harness.pid}-*" for harness in harnesses]
    deadline = time.monotonic() + 60  # the watchdogs' grace, then their SIGKILL
    while True:
        servers = [process for mark in marks for process in _marked(mark)]
        folders = [path for pattern in run_folders for path in glob.glob(pattern)]
        if not servers and not folders:
            break
        if time.monotonic() > deadline:
            for process in servers:
                process.kill()
            raise AssertionError(f"left running: {servers}; left in /tmp: {folders}")
        time.sleep(0.05)
