"""The result file: one JSON document per scenario run (written by :mod:`harness.storage`).

Layout (``schema_version`` 1)::

    {"schema_version": 1, "scenario": {...}, "scenario_file": "...",
     "environment": {...}, "started_at": "...", "finished_at": "...",
     "complete": true, "records": [PointRecord, ...]}
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.errors import InputError

SCHEMA_VERSION = 1
PACKAGES = ("numpy", "thrift", "tritonclient", "nvidia-pytriton", "torch", "omniback", "pipebench")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class PointRecord:
    """One system at one load point: the row the tables and comparisons read.

    Counts (``sent`` ... ``timeouts``) and ``latency_ms`` cover the measured windows of all
    repeats together; ``qps`` is the median of ``qps_repeats`` and ``qps_ci95`` the 95 %
    confidence interval of their mean (``None`` with a single repeat).
    """

    system: str
    label: str
    #: The load point: ``clients`` in closed loop, ``rate`` (requests/s) in open loop.
    clients: int | None = None
    rate: float | None = None
    qps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    stable: bool = False
    client_bound: bool = False
    valid: bool = False
    #: Why ``valid`` is false: "unstable", "short", "errors", "client-bound".
    invalid_reasons: list[str] = field(default_factory=list)
    repeats: int = 0
    qps_ci95: list[float] | None = None
    qps_repeats: list[float] = field(default_factory=list)
    #: Formed batch size -> batches executed during the measured windows (server side).
    batch_sizes: dict[int, int] = field(default_factory=dict)
    #: What the ``null`` system reached with the same clients: the load generator's ceiling.
    client_ceiling_qps: float | None = None
    #: CPU use in % of one core: the harness and its client processes (for an in-process
    #: system that includes the system itself), and the system's server processes.
    cpu: dict[str, float | None] = field(default_factory=dict)
    #: Who generated the load: "threads", "processes" or the system's own generator.
    load_generator: str = "threads"
    client_processes: int = 1
    #: Measured seconds, all repeats together.
    duration_s: float = 0.0
    first_error: str | None = None
    #: Set when the point could not be measured at all (the system failed).
    failure: str | None = None
    server_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def point(self) -> float:
        return self.clients if self.clients is not None else self.rate or 0.0

    @property
    def point_name(self) -> str:
        return f"{self.clients} clients" if self.clients is not None else f"{self.rate:g} req/s"


@dataclass
class RunResult:
    scenario: dict[str, Any]
    scenario_file: str
    environment: dict[str, Any]
    started_at: str
    records: list[PointRecord] = field(default_factory=list)
    finished_at: str | None = None
    complete: bool = False
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
        "git": _git_sha(),
    }


def read_result(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable result file: {exc}") from None
