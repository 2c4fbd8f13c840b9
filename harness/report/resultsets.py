"""Result files as the report and the comparison read them: plain dicts, tolerant of age.

Result files outlive the code that wrote them, so everything here reads records as dicts
and treats every field beyond ``label``/``qps`` as optional: a file from before repeats,
batch histograms or open-loop rates still renders and compares.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.results import PointRecord, Ratio, read_result

Record = dict[str, Any]
#: A load point: ("clients", 10) for closed loop, ("rate", 500.0) for open loop.
Point = tuple[str, float]


@dataclass(frozen=True)
class ResultSet:
    """One result file: a scenario run, its environment and its records."""

    path: Path
    name: str
    scenario: dict[str, Any]
    environment: dict[str, Any]
    started_at: str
    complete: bool
    records: list[Record]

    @property
    def labels(self) -> list[str]:
        """System labels in the scenario's column order (then any extra ones)."""
        ordered = [s.get("label") or s.get("name") for s in self.scenario.get("systems", [])]
        seen = [label for label in ordered if label]
        for record in self.records:
            if record["label"] not in seen:
                seen.append(record["label"])
        return seen


def load_result_set(path: Path) -> ResultSet:
    """Read one result file; anything that is not one raises ``FILE: field: reason``."""
    document = read_result(path)
    if not isinstance(document, dict):
        raise InputError(f"{path}: (top level): not a result file (expected a JSON object)")
    scenario = document.get("scenario")
    if not isinstance(scenario, dict) or not isinstance(scenario.get("name"), str):
        raise InputError(f"{path}: scenario.name: missing (not a pipebench result file)")
    records = document.get("records")
    if not isinstance(records, list):
        raise InputError(f"{path}: records: missing or not a list")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("label"), str):
            raise InputError(f"{path}: records.{index}.label: missing")
        if point_of(record) is None:
            raise InputError(f"{path}: records.{index}: neither clients nor rate")
    return ResultSet(
        path=path,
        name=scenario["name"],
        scenario=scenario,
        environment=document.get("environment") or {},
        started_at=str(document.get("started_at") or ""),
        complete=bool(document.get("complete", False)),
        records=records,
    )


def result_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder contributes its ``*.json`` (not its subfolders)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.exists():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def latest_by_scenario(paths: list[Path]) -> dict[str, ResultSet]:
    """The newest result per scenario name, so a folder of many runs reads as one run each."""
    latest: dict[str, ResultSet] = {}
    for path in result_files(paths):
        result = load_result_set(path)
        kept = latest.get(result.name)
        if kept is None or (result.started_at, str(path)) > (kept.started_at, str(kept.path)):
            latest[result.name] = result
    return latest


def point_of(record: Record) -> Point | None:
    for kind in ("clients", "rate"):
        value = record.get(kind)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return kind, value
    return None


def point_text(point: Point) -> str:
    kind, value = point
    if kind == "rate":
        return f"{value:g} req/s"
    return f"{value:g} client" + "s" * (value != 1)


def measured(record: Record) -> bool:
    """The point produced numbers (its system did not fail before or during it)."""
    return not record.get("failure") and bool(record.get("ok", 1))


def batch_sizes(record: Record) -> dict[int, int]:
    """Formed batch sizes: the record's own field, or the server's counters in older files."""
    sizes = record.get("batch_sizes") or (record.get("server_stats") or {}).get("batch_sizes")
    if not isinstance(sizes, dict):
        return {}
    return {int(size): int(count) for size, count in sizes.items() if int(count) > 0}


def as_point_record(record: Record) -> PointRecord:
    """The dataclass :mod:`harness.table` renders; fields it does not know are dropped.

    A file from before validity marks has nothing against its points: they read as valid.
    """
    known = {f.name for f in dataclasses.fields(PointRecord)}
    values = {key: value for key, value in record.items() if key in known}
    values.setdefault("system", record["label"])
    for flag in ("valid", "stable"):
        if flag in known:
            values.setdefault(flag, True)
    if isinstance(values.get("ratio"), dict):
        values["ratio"] = Ratio(**values["ratio"])
    return PointRecord(**values)
