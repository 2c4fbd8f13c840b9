"""Scenario files: YAML in, a validated and frozen :class:`Scenario` out.

A scenario is one table of the seed report: which workload, how the serving side is
configured (instances, batching), which load is applied and which systems are compared.
Every mistake is reported as ``FILE: field.path: reason`` through :class:`InputError`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engines.workloads import UnknownWorkloadError, workload_class
from harness.affinity import Affinity
from harness.errors import InputError
from harness.limits import thread_budget

#: Strict: YAML's ``yes``/``on`` are booleans, and a boolean is not a count.
PositiveInt = Annotated[int, Field(gt=0, strict=True)]
PositiveFloat = Annotated[float, Field(gt=0)]
#: Triton's ``max_batch_size`` is an int32.
INT32_MAX = 2**31 - 1
#: Scenario names become result file names: no folders, no spaces, no dot files.
_FILE_NAME_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that rejects a key given twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *defaults`` may be overridden, that is its purpose
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _printable(part: object) -> str:
    """A location part on one line: a key with a newline or tab is shown quoted."""
    text = str(part)
    return text if text.isprintable() else repr(text)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, inside ``list[...]``, ``... | None`` or ``Annotated``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _keys_at(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """The keys that the mapping at ``location`` (list indices skipped) accepts."""
    node: type[BaseModel] | None = model
    for part in location:
        if isinstance(part, str) and node is not None:
            field = node.model_fields.get(part)
            node = _model_in(field.annotation) if field else None
    return list(node.model_fields) if node is not None else []


def _unknown_key(model: type[BaseModel], location: tuple[int | str, ...]) -> str:
    """``unknown key (did you mean systems?)``: the valid key nearest the misspelt one."""
    valid = _keys_at(model, location[:-1])
    close = difflib.get_close_matches(str(location[-1]), valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    return f"unknown key (valid: {', '.join(valid)})" if valid else "unknown key"


def _describe(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """``field.path: reason`` for the first error, and how many more there are.

    An unknown key comes first: a misspelt ``sytems`` also makes ``systems`` missing, and
    the misspelling is the mistake to report."""
    errors = exc.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = ".".join(_printable(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        reason = _unknown_key(model, first["loc"])
    else:
        reason = first["msg"].removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    where = f"{prefix}{location}".rstrip(".") or "(top level)"
    return f"{where}: {reason}{more}"


class Frozen(BaseModel):
    # inf and nan are valid YAML floats (.inf, .nan) but never a valid duration or count.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WorkloadSpec(Frozen):
    """The ``workload`` block: a registered name plus that workload's own parameters."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    name: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            workload_class(name)
        except UnknownWorkloadError as exc:
            raise ValueError(exc.args[0]) from None
        return name


class Serving(Frozen):
    """How every system serves: the seed's instances / timeout / max_batch.

    ``serving: as_deployed`` (every system remote) takes them from the servers instead;
    with remote systems, the fields a scenario sets must agree with the deployment.
    """

    instances: PositiveInt = 1
    batching_timeout_ms: Annotated[float, Field(ge=0)] = 0.0
    max_batch: Annotated[int, Field(gt=0, le=INT32_MAX, strict=True)] = 1
    as_deployed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _as_deployed(cls, value: Any) -> Any:
        if value == "as_deployed":
            return {"as_deployed": True}
        if isinstance(value, str):
            raise ValueError(f"expected a mapping or as_deployed, got {value!r}")
        return value


def expand_range(text: str) -> list[float]:
    """``"1,4,16"``, ``"1:64:x2"`` (times 2) or ``"100:2000:+100"`` (plus 100; ``"1:4"``
    steps by 1) as the list of its values, both ends included."""
    if ":" not in text:
        return [float(part) for part in text.split(",") if part.strip()]
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{text!r}: a range is start:stop[:+step or :xfactor]")
    start, stop = float(parts[0]), float(parts[1])
    step = parts[2].strip() if len(parts) == 3 else "+1"
    if not 0 < start <= stop:
        raise ValueError(f"{text!r}: a range needs 0 < start <= stop")
    factor = step.startswith("x")
    amount = float(step.lstrip("x+"))
    if (factor and amount <= 1) or (not factor and amount <= 0):
        raise ValueError(f"{text!r}: the step must grow (+N with N > 0, or xN with N > 1)")
    values, value = [], start
    while value <= stop * (1 + 1e-9) and len(values) < 10_000:
        values.append(round(value, 6))
        value = value * amount if factor else value + amount
    return values


def _sweep(value: Any) -> Any:
    """A sweep given as range text (scenario or command line) becomes its list (whole
    numbers as ints: client counts are strict ints)."""
    if not isinstance(value, str):
        return value
    return [int(v) if float(v).is_integer() else v for v in expand_range(value)]


class Search(Frozen):
    """``load.search``: the highest open-loop rate whose p99 (or p50) stays within a bound.

    Rates in ``rates`` (``"low:high"``) are bisected (geometrically) until the bracket is
    within ``precision_pct``; each probe is a point measured like any other. The found
    goodput is then checked: a rate ``check_pct`` above it is measured too; when that check
    holds (a probe below the knee had stalled), the bisection goes on above it.
    ``max_probes`` bounds each bisection.
    """

    p99_ms: PositiveFloat | None = None
    p50_ms: PositiveFloat | None = None
    rates: str
    precision_pct: PositiveFloat = 5.0
    max_probes: Annotated[int, Field(ge=2, strict=True)] = 10
    check_pct: PositiveFloat = 20.0

    @model_validator(mode="after")
    def _one_bound(self) -> Search:
        if (self.p99_ms is None) == (self.p50_ms is None):
            raise ValueError("give p99_ms or p50_ms, exactly one")
        low, high = self.bounds
        if not 0 < low < high:
            raise ValueError(f"rates: {self.rates!r} is not low:high with 0 < low < high")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        parts = self.rates.split(":")
        try:
            low, high = (float(part) for part in parts[:2])
        except ValueError:
            raise ValueError(f"rates: {self.rates!r} is not low:high") from None
        return low, high

    @property
    def percentile(self) -> str:
        return "p99" if self.p99_ms is not None else "p50"

    @property
    def bound_ms(self) -> float:
        return self.p99_ms if self.p99_ms is not None else self.p50_ms  # type: ignore[return-value]

    @property
    def title(self) -> str:
        return f"goodput at {self.percentile} ≤ {self.bound_ms:g} ms"


class Load(Frozen):
    """The load every system gets, and how it is measured.

    The sweep chooses the mode: ``clients`` (closed loop: each client sends, waits for the
    reply, repeats) or ``rates`` (open loop: requests/s arriving on a schedule, latency
    timed from each request's scheduled send).

    Each point is measured in **rounds**: in a round every system of the scenario runs
    once (a warm-up, then ``duration_s`` in 3 windows), in an order rotated from round to
    round, so all systems see the same conditions and each round gives one paired
    observation per system. After ``repeats`` rounds, rounds are added until the 95 %
    interval of every system's QPS is within ``precision_pct`` of it, ``max_repeats`` is
    reached or the point's share of ``budget_s`` is spent. ``stability_pct`` (off by
    default) adds perf_analyzer's rule inside a round: windows until the last 3 agree.
    """

    clients: list[PositiveInt] | None = Field(default=None, min_length=1)
    rates: list[PositiveFloat] | None = Field(default=None, min_length=1)
    #: Instead of a sweep: find the highest rate within a latency bound (open loop).
    search: Search | None = None
    #: Open loop: ``poisson`` (random arrivals, the realistic default) or ``constant``.
    arrival: Literal["poisson", "constant"] = "poisson"
    #: Open loop: senders (each one client) that requests wait for; a full pool queues.
    max_outstanding: PositiveInt = 64
    #: Client processes for systems reached over the network (one process per client at
    #: most); in-process systems are always driven by threads of the harness itself.
    client_processes: PositiveInt = 1
    #: Warm-up of each system's turn in a round (its clients connect, caches fill).
    warmup_s: Annotated[float, Field(ge=0)] = 0.5
    #: Measured seconds per turn (3 windows).
    duration_s: PositiveFloat = 2.0
    #: Systems driven by client threads in closed loop take their turns of a round in
    #: slices this long, turn about (see harness.interleave): the host's speed changes
    #: every second or so, and what they are compared under must not. None: one
    #: contiguous turn each.
    slice_s: PositiveFloat | None = 0.1
    #: Rounds at least (6 is the fewest that give a 95 % interval of a median), and at most.
    repeats: PositiveInt = 6
    max_repeats: PositiveInt = 15
    #: A point is precise (✓) when its QPS interval's half-width is within this % of it.
    precision_pct: PositiveFloat = 5.0
    #: Seconds of measuring for the whole scenario (shared evenly by its points): past a
    #: point's share no round is added, whatever the precision. None: no limit.
    budget_s: PositiveFloat | None = None
    #: Optional per-window stability rule inside a turn (max/min of the last 3 windows'
    #: QPS and TP50 within this %), windows added up to ``max_windows``. None: off.
    stability_pct: PositiveFloat | None = None
    max_windows: Annotated[int, Field(ge=3)] = 10
    #: Seed of the open-loop arrival schedule; None draws one per run (recorded).
    seed: Annotated[int, Field(ge=0)] | None = None
    #: A turn during which other processes used more than this % of the machine's CPU
    #: (see :mod:`harness.interference`) is measured again, at most ``retakes`` times.
    others_max_pct: PositiveFloat = 10.0
    retakes: Annotated[int, Field(ge=0)] = 2
    #: CPU placement of harness and servers (see :mod:`harness.affinity`): ``auto``
    #: shares one CPU on machines with 2-3, splits them with 4 or more; ``none``: the OS.
    affinity: Affinity = "auto"
    #: Every request has this deadline; a later reply or none at all is a timeout.
    request_timeout_s: PositiveFloat = 30.0
    #: Validity: (errors + timeouts) / sent must stay at or under this.
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.001
    #: Validity: the rounds together must measure at least this long.
    min_duration_s: Annotated[float, Field(ge=0)] = 1.0

    @field_validator("clients", "rates", mode="before")
    @classmethod
    def _ranges(cls, value: Any) -> Any:
        return _sweep(value)

    @field_validator("clients", "max_outstanding")
    @classmethod
    def _threads_available(cls, value: Any, info: ValidationInfo) -> Any:
        """Each client (and each open-loop sender) is a thread: ask for no more than the
        machine can start, rather than fail with "can't start new thread" minutes in."""
        budget, why = thread_budget()
        for count in value if isinstance(value, list) else [value]:
            if count is not None and count > budget:
                raise ValueError(
                    f"{info.field_name} {count} needs {count} threads; "
                    f"this machine allows at most {budget} ({why})"
                )
        return value

    @model_validator(mode="after")
    def _one_sweep(self) -> Load:
        given = [self.clients is not None, self.rates is not None, self.search is not None]
        if sum(given) != 1:
            raise ValueError(
                "give clients (closed loop) or rates (open loop), exactly one (or a search)"
            )
        if self.max_repeats < self.repeats:
            raise ValueError(f"max_repeats ({self.max_repeats}) is below repeats ({self.repeats})")
        return self

    @property
    def mode(self) -> Literal["closed", "open"]:
        return "closed" if self.clients is not None else "open"  # a search: open loop

    @property
    def points(self) -> list[float]:
        """The sweep: client counts (closed loop) or request rates (open loop)."""
        return list(self.clients if self.clients is not None else self.rates or [])

    @property
    def max_concurrency(self) -> int:
        """The most requests a system can have in flight at once."""
        return max(self.clients) if self.clients is not None else self.max_outstanding


class NodePlacement(Frozen):
    """``node:`` of a system: its server runs on a node of the run's cluster (``bench run
    --cluster``) that offers ``resources`` (e.g. ``{GPU: 1}``, or ``{local_node_1: 1}`` on a
    ``local:N`` cluster), started there by a Ray actor; its clients stay off that node. The
    resources choose the node, they are not reserved (the scenario's systems share it)."""

    resources: dict[str, PositiveFloat] = Field(min_length=1)


class SystemSpec(Frozen):
    """One column of the table: a registered system, its label and its own options."""

    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    #: Workload parameters this system overrides (e.g. ``{dtype: bytes}``), so that two
    #: variants of one workload are compared in one paired run.
    workload: dict[str, Any] = Field(default_factory=dict)
    #: Where its server runs: a cluster node (``--cluster``); None: this machine.
    node: NodePlacement | None = None

    @property
    def column(self) -> str:
        return self.label or self.name

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from harness.system import REGISTRY

        if name not in REGISTRY:
            raise ValueError(f"unknown system {name!r} (known: {', '.join(sorted(REGISTRY))})")
        return name


class Scenario(Frozen):
    name: str
    description: str = ""
    #: Which table of the seed report this scenario reproduces (read by the report).
    seed_table: str | None = None
    workload: WorkloadSpec
    serving: Serving = Serving()
    load: Load
    systems: list[SystemSpec] = Field(min_length=1)
    #: The column every other system's QPS and TP50 are divided by (default: the first).
    baseline: str | None = None

    @property
    def baseline_column(self) -> str:
        return self.baseline or self.systems[0].column

    def for_system(self, spec: SystemSpec) -> Scenario:
        """The scenario as ``spec`` runs it: its workload overrides applied."""
        if not spec.workload:
            return self
        workload = WorkloadSpec.model_validate(
            {"name": self.workload.name, **self.workload.options, **spec.workload}
        )
        return self.model_copy(update={"workload": workload})

    @model_validator(mode="after")
    def _baseline_is_a_column(self) -> Scenario:
        columns = [spec.column for spec in self.systems]
        if self.baseline is not None and self.baseline not in columns:
            raise ValueError(
                f"baseline: {self.baseline!r} is not a column (columns: {', '.join(columns)})"
            )
        return self

    @field_validator("systems", mode="before")
    @classmethod
    def _names_are_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("systems")
    @classmethod
    def _unique_columns(cls, systems: list[SystemSpec]) -> list[SystemSpec]:
        seen: set[str] = set()
        for spec in systems:
            if spec.column in seen:
                raise ValueError(f"two systems share the column {spec.column!r}: give one a label")
            seen.add(spec.column)
        return systems

    @field_validator("name")
    @classmethod
    def _file_name_safe(cls, name: str) -> str:
        if not _FILE_NAME_SAFE.fullmatch(name):
            raise ValueError(
                f"{name!r} is not usable in a result file name "
                "(letters, digits and _ . + - only, not starting with . _ + -)"
            )
        return name


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; any problem raises :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except RecursionError:
        raise InputError(f"{path}: (top level): nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: {where}invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: (top level): expected a mapping of scenario fields")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {_describe(exc, Scenario)}") from None
    except RecursionError:
        raise InputError(f"{path}: (top level): nested too deeply") from None
    scenario = _resolve_paths(path, scenario)
    _check_plugin_options(path, scenario)
    return scenario


def _resolve_paths(path: Path, scenario: Scenario) -> Scenario:
    """The workload's file parameters (``Workload.paths``) made absolute, relative to the
    scenario's folder: servers run in other working directories."""
    fields = workload_class(scenario.workload.name).paths
    if not fields:
        return scenario
    base = path.resolve().parent

    def absolute(options: dict[str, Any]) -> dict[str, Any]:
        return {
            key: str(base / Path(value).expanduser())
            if key in fields and isinstance(value, str) and value
            else value
            for key, value in options.items()
        }

    workload = WorkloadSpec.model_validate(
        {"name": scenario.workload.name, **absolute(scenario.workload.options)}
    )
    systems = [
        spec.model_copy(update={"workload": absolute(spec.workload)}) for spec in scenario.systems
    ]
    return scenario.model_copy(update={"workload": workload, "systems": systems})


def _check_plugin_options(path: Path, scenario: Scenario) -> None:
    """Validate the blocks that the workload and each system define for themselves."""
    from harness.system import missing_extra, system_class

    params = workload_class(scenario.workload.name).Params
    blocks: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
        ("workload.", params, scenario.workload.options)
    ]
    for index, spec in enumerate(scenario.systems):
        if problem := missing_extra(spec.name):
            raise InputError(f"{path}: systems.{index}.name: {problem}")
        blocks.append((f"systems.{index}.options.", system_class(spec.name).Options, spec.options))
        if spec.workload:
            merged = {**scenario.workload.options, **spec.workload}
            blocks.append((f"systems.{index}.workload.", params, merged))
    for prefix, model, options in blocks:
        empty = [key for key, value in options.items() if value == ""]
        if empty:  # an empty payload, binary, runtime... only fails later, in a server
            raise InputError(f"{path}: {prefix}{empty[0]}: must not be empty")
        try:
            model.model_validate(options)
        except ValidationError as exc:
            raise InputError(f"{path}: {_describe(exc, model, prefix)}") from None
    workload = workload_class(scenario.workload.name).from_options(scenario.workload.options)
    if not workload.computable:
        for index, spec in enumerate(scenario.systems):
            cls = system_class(spec.name)
            if not (cls.declares_tensors and cls(spec, scenario).remote):
                raise InputError(
                    f"{path}: systems.{index}: {spec.column} cannot serve workload "
                    f"{scenario.workload.name} without its model file: only a remote triton "
                    "(options.url) can, or give workload.model"
                )
    if workload.named:
        for index, spec in enumerate(scenario.systems):
            if not system_class(spec.name).named_tensors:
                raise InputError(
                    f"{path}: systems.{index}.name: {spec.name} cannot carry the named "
                    f"tensors of workload {scenario.workload.name} (pipe, pipe+thrift, thrift, "
                    "triton and triton-rpc can)"
                )
    if scenario.serving.as_deployed:
        local = [s.column for s in scenario.systems if not system_class(s.name)(s, scenario).remote]
        if local:
            raise InputError(
                f"{path}: serving: as_deployed needs remote systems only, but the harness "
                f"starts {', '.join(local)} (give them a serving block)"
            )


def override(path: Path, scenario: Scenario, changes: dict[str, Any]) -> Scenario:
    """``scenario`` with ``changes`` (dotted field path -> value, e.g. from ``bench run
    --set load.duration_s=20``) applied and validated again. Setting one sweep
    (``load.clients``, ``load.rates`` or ``load.search``) drops the others; a bad value is
    ``FILE: field.path: reason`` like any scenario error."""
    data = scenario.model_dump(mode="json", exclude_unset=True)
    sweeps = {"load.clients", "load.rates", "load.search"}
    for key, value in changes.items():
        if key in sweeps:
            for other in sweeps - {key}:
                data.get("load", {}).pop(other.split(".")[1], None)
        *parents, last = key.split(".")
        node = data
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"{path}: --set {key}: {part} is not a mapping")
            node = child
        node[last] = value
    try:
        changed = Scenario.model_validate(data)
    except ValidationError as exc:
        raise InputError(
            f"{path}: {_describe(exc, Scenario)} (after the command line's overrides)"
        ) from None
    changed = _resolve_paths(path, changed)
    _check_plugin_options(path, changed)
    return changed
