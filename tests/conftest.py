"""Shared fixtures: scenarios written to tmp files, and leak checks on real processes.

``pytest --burn N`` runs the whole session beside N processes that burn a CPU each: the
tests must hold on a busy machine (a laptop, a shared CI runner), so every timing-dependent
test waits on the run's own events, never on a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from harness.scenario import Scenario, load_scenario
from harness.storage import default_fallback

ROOT = Path(__file__).resolve().parents[1]
SERVER_MARKERS = (
    "tritonserver",
    "triton_python_backend_stub",
    "engines.thrift.server",
    "harness/watchdog.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a script (``cmd &`` without job control, as
    nohup'd CI steps are) inherits SIGINT ignored, and so does every process it starts:
    its Ctrl-C tests would see no Ctrl-C at all. Give it back its usual meaning."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--burn",
        type=int,
        default=0,
        metavar="N",
        help="run the tests beside N CPU-burning processes (a busy machine)",
    )


@pytest.fixture(scope="session", autouse=True)
def _burners(request: pytest.FixtureRequest) -> Iterator[None]:
    """The ``--burn`` processes: started before the first test, killed after the last."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(request.config.getoption("--burn"))
    ]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


def hello_scenario(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "test_hello",
        "workload": {"name": "echo", "payload": "HelloWorld"},
        "serving": {"instances": 1, "batching_timeout_ms": 0, "max_batch": 1},
        "load": {
            "clients": [1, 3],
            "warmup_s": 0.1,
            "duration_s": 0.4,
            "repeats": 2,
            "max_repeats": 2,
        },
        "systems": ["pipe", "pipe+thrift", "thrift", "triton"],
    }
    data.update(overrides)
    return data


@pytest.fixture
def write_scenario(tmp_path: Path):
    def write(data: dict[str, Any] | str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return path

    return write


@pytest.fixture
def make_scenario(write_scenario):
    def make(**overrides: Any) -> Scenario:
        return load_scenario(write_scenario(hello_scenario(**overrides)))

    return make


#: The watchdog of this process's own work folder (harness.process.work_dir): it guards
#: no server and lives as long as the test session.
_WORK_DIR_GUARD = "harness/watchdog.py - "


def server_processes() -> list[psutil.Process]:
    """Server processes descended from this test process (ours only, never others') that
    still run: a zombie has exited, it only waits for its parent to reap it."""
    found = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE or _WORK_DIR_GUARD in cmdline:
                continue
        except psutil.Error:
            continue
        if any(marker in cmdline for marker in SERVER_MARKERS):
            found.append(child)
    return found


def pipebench_shm() -> list[str]:
    """pipebench shared-memory regions that no live process maps: leaks, not the regions
    of a Triton that someone else runs on this machine at the same time."""
    names = {name for name in os.listdir("/dev/shm") if name.startswith("pipebench_")}
    for maps in Path("/proc").glob("[0-9]*/maps"):
        if not names:
            break
        try:
            text = maps.read_text()
        except OSError:
            continue
        names -= {name for name in names if f"/dev/shm/{name}" in text}
    return sorted(names)


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a server process, a shared-memory region or a result in
    the fallback folder (where a run saves when its results folder fails) behind."""
    shm_before = set(pipebench_shm())
    fallback = default_fallback()
    saved_before = set(fallback.glob("*.json"))
    yield
    left = server_processes()
    for process in left:  # clean up so one failure does not cascade
        os.kill(process.pid, signal.SIGKILL)
    assert not left, f"server processes left running: {[p.pid for p in left]}"
    assert set(pipebench_shm()) <= shm_before, "shared-memory regions left in /dev/shm"
    assert set(fallback.glob("*.json")) <= saved_before, f"results saved in {fallback}"


@pytest.fixture
def bench_run() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``bench`` in the background (see ``tests.cli_helpers.start_bench``); a run the
    test did not see to its end (it failed first) is killed, and its watchdogs clean up."""
    from tests.cli_helpers import start_bench

    runs: list[subprocess.Popen[str]] = []

    def start(*args: str, prelude: str = "") -> subprocess.Popen[str]:
        runs.append(start_bench(*args, prelude=prelude))
        return runs[-1]

    yield start
    for run in runs:
        if run.poll() is None:
            run.kill()
        run.wait()
        for stream in (run.stdout, run.stderr):
            if stream:
                stream.close()
