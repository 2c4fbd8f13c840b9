"""The result file: one JSON document per scenario run, and the models that define it
(written by :mod:`harness.storage`).

Every writer and every reader (report, seed page, compare, export) goes through these
pydantic models, so a field exists because it is declared here, not because some writer
happened to put it in a dict. Layout (``schema_version`` 2)::

    {"schema_version": 2, "scenario": {...}, "scenario_file": "...",
     "environment": {...}, "started_at": "...", "finished_at": "...",
     "complete": true, "records": [PointRecord, ...]}

Files outlive the code that wrote them: :func:`read_result` checks ``schema_version``,
migrates a version-1 file (written before histograms, repeats and windows were kept) and
refuses a newer version with one line instead of misreading it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from harness.errors import InputError

SCHEMA_VERSION = 2
PACKAGES = (
    "numpy",
    "thrift",
    "tritonclient",
    "nvidia-pytriton",
    "torch",
    "omniback",
    "hdrhistogram",
    "pipebench",
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: A load point: ("clients", 10) in closed loop, ("rate", 500.0) in open loop.
Point = tuple[str, float]


class _Model(BaseModel):
    """Unknown fields are refused: a writer's typo must fail, not vanish on the next read."""

    model_config = ConfigDict(extra="forbid")


class RepeatSummary(_Model):
    """One repeat (a "round") of a point: what its measured windows gave on their own.

    Compare judges latency on these per-repeat values, as it judges QPS on ``qps_repeats``.
    """

    qps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    ok: int
    errors: int
    timeouts: int
    duration_s: float
    #: This repeat's latency histogram (see :attr:`PointRecord.histogram`).
    histogram: str | None = None


class WindowPoint(_Model):
    """One window of the time series: every window of every repeat, stable or not."""

    repeat: int
    #: Seconds from the point's first window (repeat 0) to this window's start.
    start_s: float
    duration_s: float
    qps: float
    #: None: no reply came back in this window (a stalled server, a pause of the host).
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    timeouts: int = 0
    #: The window is one of those reported (the last three of its repeat).
    measured: bool = True


class Ratio(_Model):
    """This point's QPS (and TP50) as a paired ratio to a baseline system of the same run."""

    baseline: str
    qps: float
    qps_ci95: list[float] | None = None
    p50: float | None = None
    p50_ci95: list[float] | None = None


class PointRecord(_Model):
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
    latency_ms: dict[str, float] = Field(default_factory=dict)
    sent: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    stable: bool = False
    client_bound: bool = False
    valid: bool = False
    #: Why ``valid`` is false: "imprecise", "busy" (with imprecise: other processes used
    #: more of the machine than allowed), "unstable", "short", "errors", "client-bound".
    invalid_reasons: list[str] = Field(default_factory=list)
    #: Rounds measured (each a turn of every system of the scenario, back to back).
    repeats: int = 0
    #: The 95 % interval of the median QPS (see ``interval_method``); None below 6 rounds.
    qps_ci95: list[float] | None = None
    qps_repeats: list[float] = Field(default_factory=list)
    #: How ``qps_ci95`` was computed (None in files from before paired rounds).
    interval_method: str | None = None
    #: Half-width of ``qps_ci95`` in % of ``qps``: the precision the point reached.
    precision_pct: float | None = None
    #: QPS and TP50 relative to the scenario's baseline system, paired by round.
    ratio: Ratio | None = None
    #: Share (%) of the machine's CPU that other processes used during the kept turns
    #: (median; see harness.interference), and the turns measured again because others
    #: used more than the scenario allows. None in files from before it was read.
    others_cpu_pct: float | None = None
    retaken_turns: int = 0
    #: Its turns were slices of this many seconds, turn about with the scenario's other
    #: systems (see harness.interleave); None: one contiguous turn per round.
    slice_s: float | None = None
    #: Formed batch size -> batches executed during the rounds' turns (server side).
    batch_sizes: dict[int, int] = Field(default_factory=dict)
    #: The requests ``batch_sizes`` covers: every request of the rounds' turns, warm-up
    #: included (server counters are read only when nothing is in flight).
    batched_requests: int = 0
    #: What the ``null`` system reached with the same clients: the load generator's ceiling.
    client_ceiling_qps: float | None = None
    #: CPU use in % of one core: the harness and its client processes (for an in-process
    #: system that includes the system itself), and the system's server processes.
    cpu: dict[str, float | None] = Field(default_factory=dict)
    #: Who generated the load: "threads", "processes" or the system's own generator.
    load_generator: str = "threads"
    client_processes: int = 1
    #: Measured seconds, all repeats together.
    duration_s: float = 0.0
    first_error: str | None = None
    #: Set when the point could not be measured at all (the system failed).
    failure: str | None = None
    #: Set when the system could not run on this machine for a reason that is not a failure
    #: (an optional wheel not installed, no GPU for its runtime): the reason. Such a point
    #: has no numbers, is not a failure and is no regression. Written only when set, so
    #: files without skips stay readable by readers from before this field.
    skipped: str | None = None
    server_stats: dict[str, Any] = Field(default_factory=dict)
    #: How the system's replies were checked before it was measured (harness/equivalence.py):
    #: ``method`` (``expected``: the harness's own reply; ``prepared``: the no-compute
    #: reply; ``compared``: a reply the harness cannot compute, compared with
    #: ``compared_with``'s), ``requests`` checked and ``digest`` (sha256 of the replies'
    #: canonical bytes).
    reply_check: dict[str, Any] | None = None
    #: Latency of the OK replies of all repeats' measured windows as an HdrHistogram in its
    #: standard compressed base64 encoding (values in microseconds, 1 µs to the request
    #: deadline, 3 significant digits): any HdrHistogram tool decodes, merges and plots it.
    histogram: str | None = None
    per_repeat: list[RepeatSummary] = Field(default_factory=list)
    windows: list[WindowPoint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_a_point(self) -> PointRecord:
        if self.clients is None and self.rate is None:
            raise ValueError("neither clients nor rate")
        return self

    @property
    def point(self) -> float:
        return self.clients if self.clients is not None else self.rate or 0.0

    @property
    def point_key(self) -> Point:
        """``("clients", n)`` or ``("rate", r)``: how records of two runs are matched."""
        if self.clients is not None:
            return "clients", self.clients
        return "rate", self.rate or 0.0

    @property
    def point_name(self) -> str:
        return f"{self.clients} clients" if self.clients is not None else f"{self.rate:g} req/s"

    @property
    def measured(self) -> bool:
        """The point produced numbers (its system did not fail before or during it)."""
        return not self.failure and not self.skipped and self.ok > 0

    @property
    def outcome(self) -> Literal["measured", "failed", "skipped"]:
        """What became of the point: numbers, a failure, or a skip (see ``skipped``)."""
        if self.skipped:
            return "skipped"
        return "failed" if self.failure else "measured"

    @model_serializer(mode="wrap")
    def _omit_unset_skip(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("skipped") is None:
            data.pop("skipped", None)
        return data


class SystemEntry(BaseModel):
    """A system as the scenario named it (the scenario's own model may grow: extra kept)."""

    model_config = ConfigDict(extra="allow")

    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: Workload parameters this system overrode (a paired variant of the workload).
    workload: dict[str, Any] = Field(default_factory=dict)

    @property
    def column(self) -> str:
        return self.label or self.name


class ScenarioAsRun(BaseModel):
    """The scenario as it was run (after ``--quick`` and ``--systems``), as written.

    Only what readers use is typed; the rest of :class:`harness.scenario.Scenario` is kept
    as it was dumped (extra allowed), so a scenario field added later needs no migration.
    """

    model_config = ConfigDict(extra="allow")

    name: str
    description: str = ""
    seed_table: str | None = None
    workload: dict[str, Any] = Field(default_factory=dict)
    serving: dict[str, Any] = Field(default_factory=dict)
    load: dict[str, Any] = Field(default_factory=dict)
    systems: list[SystemEntry] = Field(default_factory=list)
    #: The column ratios are taken to (None: the first system).
    baseline: str | None = None


class Environment(_Model):
    """The machine and software of a run, and what the measurement applied to it."""

    cpu: str | None = None
    cores: int | None = None
    platform: str | None = None
    python: str | None = None
    packages: dict[str, str | None] = Field(default_factory=dict)
    git: str | None = None
    #: One entry per GPU (name, memory, driver), where NVML can be read.
    gpus: list[dict[str, Any]] = Field(default_factory=list)
    #: What the runner set up for measuring: CPU affinity, GC, switch interval, noise floor.
    measurement: dict[str, Any] = Field(default_factory=dict)
    #: The Ray node a whole run was sent to (``bench run --cluster ... --resources``).
    cluster_node: dict[str, Any] | None = None


class RunResult(_Model):
    """The whole result document of one scenario run."""

    schema_version: int = SCHEMA_VERSION
    scenario: ScenarioAsRun
    scenario_file: str = ""
    environment: Environment = Field(default_factory=Environment)
    started_at: str = ""
    finished_at: str | None = None
    complete: bool = False
    records: list[PointRecord] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


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


def _gpus() -> list[dict[str, Any]]:
    """GPUs and their driver through NVML (``nvidia-ml-py``), only where it is installed."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []  # no driver, or no GPU
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                {
                    "name": pynvml.nvmlDeviceGetName(handle),
                    "memory_mib": int(memory.total) // 2**20,
                    "driver": driver,
                }
            )
        return found
    except pynvml.NVMLError:
        return []
    finally:
        pynvml.nvmlShutdown()


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
        "gpus": _gpus(),
    }


# -- reading ---------------------------------------------------------------------------------

#: Fields of a version-1 record that version 2 still has (all of them: v2 only added).
_V1_RECORD_FIELDS = frozenset(PointRecord.model_fields) - {
    "skipped",
    "histogram",
    "per_repeat",
    "windows",
    "interval_method",
    "precision_pct",
    "ratio",
}


def _migrate_v1(document: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2. Version 1 had no histograms, per-repeat values or windows (they
    stay empty) and, in its oldest files, no validity marks: those points read as valid.
    Fields nothing declares (an old ``latency_histogram`` nothing wrote) are dropped."""
    records = []
    for record in document.get("records") or []:
        if not isinstance(record, dict):
            records.append(record)  # left for validation to name
            continue
        kept = {k: v for k, v in record.items() if k in _V1_RECORD_FIELDS}
        kept.setdefault("system", kept.get("label"))
        for flag in ("valid", "stable"):
            kept.setdefault(flag, True)
        records.append(kept)
    environment = document.get("environment") or {}
    known = frozenset(Environment.model_fields)
    return {
        **document,
        "schema_version": 2,
        "environment": {k: v for k, v in environment.items() if k in known},
        "records": records,
    }


def _error_location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(top level)"


def parse_result(path: Path, document: Any) -> RunResult:
    """Check the version, migrate an old document, validate: ``FILE: field: reason``."""
    if not isinstance(document, dict):
        raise InputError(f"{path}: (top level): not a result file (expected a JSON object)")
    scenario = document.get("scenario")
    if not isinstance(scenario, dict) or not isinstance(scenario.get("name"), str):
        raise InputError(f"{path}: scenario.name: missing (not a pipebench result file)")
    version = document.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"{path}: schema_version: {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version: {version} is newer than this pipebench reads "
            f"({SCHEMA_VERSION}); upgrade pipebench to read it"
        )
    if version == 1:
        document = _migrate_v1(document)
    try:
        return RunResult.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(f"{path}: {_error_location(first)}: {first['msg']}") from None


def read_result(path: Path) -> RunResult:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable result file: {exc}") from None
    return parse_result(path, document)
