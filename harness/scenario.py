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
    """How every system serves: the seed's instances / timeout / max_batch."""

    instances: PositiveInt = 1
    batching_timeout_ms: Annotated[float, Field(ge=0)] = 0.0
    max_batch: Annotated[int, Field(gt=0, le=INT32_MAX, strict=True)] = 1


class Load(Frozen):
    """The load every system gets, and how it is measured.

    The sweep chooses the mode: ``clients`` (closed loop: each client sends, waits for the
    reply, repeats) or ``rates`` (open loop: requests/s arriving on a schedule, latency
    timed from each request's scheduled send). Each point is measured ``repeats`` times:
    a warm-up, then windows of ``duration_s / 3`` until the last 3 agree within
    ``stability_pct`` (QPS and TP50) or ``max_windows`` is reached; those 3 are reported.
    """

    clients: list[PositiveInt] | None = Field(default=None, min_length=1)
    rates: list[PositiveFloat] | None = Field(default=None, min_length=1)
    #: Open loop: ``poisson`` (random arrivals, the realistic default) or ``constant``.
    arrival: Literal["poisson", "constant"] = "poisson"
    #: Open loop: senders (each one client) that requests wait for; a full pool queues.
    max_outstanding: PositiveInt = 64
    #: Client processes for systems reached over the network (one process per client at
    #: most); in-process systems are always driven by threads of the harness itself.
    client_processes: PositiveInt = 1
    warmup_s: Annotated[float, Field(ge=0)] = 2.0
    #: Measured seconds per repeat (the 3 reported windows together).
    duration_s: PositiveFloat = 10.0
    max_windows: Annotated[int, Field(ge=3)] = 10
    stability_pct: PositiveFloat = 10.0
    repeats: PositiveInt = 3
    #: Every request has this deadline; a later reply or none at all is a timeout.
    request_timeout_s: PositiveFloat = 30.0
    #: Validity: (errors + timeouts) / sent must stay at or under this.
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.001
    #: Validity: a repeat must measure at least this long.
    min_duration_s: Annotated[float, Field(ge=0)] = 1.0

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
        if (self.clients is None) == (self.rates is None):
            raise ValueError("give clients (closed loop) or rates (open loop), exactly one")
        return self

    @property
    def mode(self) -> Literal["closed", "open"]:
        return "closed" if self.clients is not None else "open"

    @property
    def points(self) -> list[float]:
        """The sweep: client counts (closed loop) or request rates (open loop)."""
        return list(self.clients if self.clients is not None else self.rates or [])

    @property
    def max_concurrency(self) -> int:
        """The most requests a system can have in flight at once."""
        return max(self.clients) if self.clients is not None else self.max_outstanding


class SystemSpec(Frozen):
    """One column of the table: a registered system, its label and its own options."""

    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

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
    _check_plugin_options(path, scenario)
    return scenario


def _check_plugin_options(path: Path, scenario: Scenario) -> None:
    """Validate the blocks that the workload and each system define for themselves."""
    from harness.system import system_class

    blocks: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
        ("workload.", workload_class(scenario.workload.name).Params, scenario.workload.options)
    ]
    for index, spec in enumerate(scenario.systems):
        blocks.append((f"systems.{index}.options.", system_class(spec.name).Options, spec.options))
    for prefix, model, options in blocks:
        empty = [key for key, value in options.items() if value == ""]
        if empty:  # an empty payload, binary, runtime... only fails later, in a server
            raise InputError(f"{path}: {prefix}{empty[0]}: must not be empty")
        try:
            model.model_validate(options)
        except ValidationError as exc:
            raise InputError(f"{path}: {_describe(exc, model, prefix)}") from None
