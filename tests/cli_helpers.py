"""Driving ``bench`` as a user does, and watching everything a run starts.

The reliability tests need more than "no server is left among my descendants": a server
killed mid-run leaves orphans (Triton's stubs) that are no longer anyone's descendants. So
:class:`RunWatcher` records every process of the run's tree while it runs, and what those
processes own on disk (log files, Triton work folders, shared-memory prefixes), and the
tests check afterwards that all of it is gone.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from tests.conftest import ROOT

BENCH = [sys.executable, "-m", "harness.cli"]
TRITON = "tritonserver"
STUB = "triton_python_backend_stub"
THRIFT = "engines.thrift.server"
_SHM_PREFIX = re.compile(r"shm-region-prefix-name=(pipebench_[0-9a-f]+_)")
_MODEL_REPOSITORY = re.compile(r"--model-repository=(\S+)/models")


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def start_bench(*args: str, prelude: str = "") -> subprocess.Popen[str]:
    """``bench ARGS`` in the background; ``prelude`` is Python run first (registers a test
    system or workload in the harness's own process, as a plugin would)."""
    argv = [*BENCH, *args]
    if prelude:
        code = f"{prelude}\nfrom harness.cli import main\nmain()"
        argv = [sys.executable, "-c", code, *args]
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_until(run: subprocess.Popen[str], text: str) -> str:
    """Read the run's stderr up to the first line containing ``text`` (e.g. ``client
    ceiling``, printed just before a system's first point is measured); what was read."""
    assert run.stderr is not None
    seen = []
    for line in run.stderr:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"the run ended without printing {text!r}:\n{''.join(seen)}")


def descendants_alive(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def only_result(results: Path) -> dict:
    files = list(results.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def wait_for_child(pid: int, marker: str, timeout: float = 60, count: int = 1) -> psutil.Process:
    """The first of ``count`` descendants of ``pid`` whose command line contains ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        found = [child for child in children if marker in cmdline(child)]
        if len(found) >= count:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {count} x {marker} under {pid} within {timeout} s")


def alive(process: psutil.Process) -> bool:
    """Running and not a zombie; ``is_running`` also rules out a reused PID."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def python_envs_made_between(start: float, end: float) -> set[str]:
    """Triton's Python backend folders (``/tmp/python_env_*``, a fixed path, empty) made in
    that time span: the backend makes one as it loads, before its first stub starts."""
    found = set()
    for path in glob.glob("/tmp/python_env_*"):
        try:
            made = os.stat(path).st_ctime
        except OSError:
            continue
        if start - 0.1 <= made <= end + 0.1:
            found.add(path)
    return found


class RunWatcher:
    """Samples a process tree every few ms and remembers everything it ever contained,
    including the temp folders of its processes (``pipebench-*-PID-*``: the run's own, a
    local cluster's, those of the harness in a Ray worker) and the Python backend folders
    of the tritonservers it started."""

    def __init__(self, pid: int) -> None:
        self.root = pid
        self.processes: dict[tuple[int, float], psutil.Process] = {}
        self.commands: dict[int, str] = {}
        self.owned_paths: set[str] = {f"/tmp/pipebench-run-{pid}-*"}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set() and self.sample():
            time.sleep(0.02)

    def sample(self) -> bool:
        """Record the tree as it is now (call it before killing what the test waited for:
        on a busy machine the sampling thread may not have run since it appeared); whether
        the root still runs."""
        with self._lock:
            try:
                tree = psutil.Process(self.root).children(recursive=True)
            except psutil.NoSuchProcess:
                return False
            for process in tree:
                try:
                    key = (process.pid, process.create_time())
                except psutil.Error:
                    continue
                if key not in self.processes:
                    self.processes[key] = process
                    # Its temp folders (a Ray worker's harness makes its own run folder).
                    self.owned_paths.add(f"/tmp/pipebench-*-{process.pid}-*")
                # Seen between fork and exec, a child still shows its parent's command line.
                command = cmdline(process)
                if command and command != self.commands.get(process.pid):
                    self.commands[process.pid] = command
                    self._note(process.pid, command)
                    self._note_python_env(command)
            return True

    def _note(self, pid: int, command: str) -> None:
        for pattern in (_SHM_PREFIX, _MODEL_REPOSITORY):
            if match := pattern.search(command):
                suffix = "*" if pattern is _SHM_PREFIX else ""
                root = "/dev/shm/" if pattern is _SHM_PREFIX else ""
                self.owned_paths.add(f"{root}{match.group(1)}{suffix}")
        try:
            log = os.readlink(f"/proc/{pid}/fd/1")
        except OSError:
            return
        if os.path.basename(log).startswith("pipebench-"):
            self.owned_paths.add(log)

    def _note_python_env(self, command: str) -> None:
        """A stub's command line names its model (in the launch's work folder, made just
        before the launch) and its shared-memory region (made just before the stub): the
        backend's python_env_* folder was made between the two."""
        argv = command.split(" ")
        if STUB not in argv[0] or len(argv) < 3 or "/models/" not in argv[1]:
            return
        try:
            start = os.stat(argv[1].split("/models/")[0] + "/models").st_ctime
            end = os.stat(f"/dev/shm/{argv[2]}").st_ctime
        except OSError:
            return
        self.owned_paths |= python_envs_made_between(start, end)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def named(self, marker: str) -> list[psutil.Process]:
        return [p for p in self.processes.values() if marker in self.commands.get(p.pid, "")]

    def left_behind(self, within: float = 5.0) -> tuple[list[str], list[str]]:
        """(processes still running, files still present) once ``within`` seconds pass."""
        self.stop()
        deadline = time.monotonic() + within
        while True:
            running = [p for p in self.processes.values() if alive(p)]
            files = [f for pattern in sorted(self.owned_paths) for f in glob.glob(pattern)]
            if (not running and not files) or time.monotonic() > deadline:
                return [f"{p.pid} {self.commands.get(p.pid, '')[:80]}" for p in running], files
            time.sleep(0.05)

    def assert_nothing_left(self, within: float = 5.0) -> None:
        running, files = self.left_behind(within)
        for process in self.processes.values():  # clean up, so one failure does not cascade
            if alive(process):
                process.kill()
        assert not running, f"still running {within} s after the run: {running}"
        assert not files, f"left on disk: {files}"
