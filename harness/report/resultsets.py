"""Result files as the report, the comparison and the export read them.

Every file is read through the result contract (:mod:`harness.results`): its version is
checked, an old file is migrated, and what comes out is typed records, so a reader never
guesses at a field. A file that is not a result is one ``FILE: field: reason`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.results import (
    Environment,
    Point,
    PointRecord,
    RunResult,
    ScenarioAsRun,
    read_result,
)

__all__ = ["Point", "PointRecord", "ResultSet", "latest_by_scenario", "load_result_set"]


@dataclass(frozen=True)
class ResultSet:
    """One result file: where it was read from, and its document."""

    path: Path
    document: RunResult

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def scenario(self) -> ScenarioAsRun:
        return self.document.scenario

    @property
    def environment(self) -> Environment:
        return self.document.environment

    @property
    def started_at(self) -> str:
        return self.document.started_at

    @property
    def complete(self) -> bool:
        return self.document.complete

    @property
    def records(self) -> list[PointRecord]:
        return self.document.records

    @property
    def labels(self) -> list[str]:
        """System labels in the scenario's column order (then any extra ones)."""
        seen = [spec.column for spec in self.scenario.systems]
        for record in self.records:
            if record.label not in seen:
                seen.append(record.label)
        return seen

    def expected_keys(self) -> set[tuple[str, Point]]:
        """(label, point) of every system x load point the scenario asked for."""
        load = self.scenario.load
        kind = "rate" if load.get("rates") else "clients"
        points = load.get("rates") or load.get("clients") or []
        return {(spec.column, (kind, value)) for spec in self.scenario.systems for value in points}


def load_result_set(path: Path) -> ResultSet:
    """Read one result file; anything that is not one raises ``FILE: field: reason``."""
    return ResultSet(path=path, document=read_result(path))


def result_files(paths: list[Path]) -> list[Path]:
    """Files as given; a folder contributes its ``*.json`` (not its subfolders), and a
    folder without any is an error naming it (an empty baseline must not pass a gate)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                raise InputError(f"{path}: no result files (*.json) in this folder")
            files.extend(found)
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


def point_text(point: Point) -> str:
    kind, value = point
    if kind == "rate":
        return f"{value:g} req/s"
    return f"{value:g} client" + "s" * (value != 1)


def batch_sizes(record: PointRecord) -> dict[int, int]:
    """Formed batch sizes: the record's own field, or the server's counters in older files."""
    sizes = record.batch_sizes or record.server_stats.get("batch_sizes")
    if not isinstance(sizes, dict):
        return {}
    return {int(size): int(count) for size, count in sizes.items() if int(count) > 0}
