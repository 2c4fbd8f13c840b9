"""Markdown pages: one per scenario run, and the index that links them.

Every figure a page shows comes from a result file; the page says which one and on which
machine, and the seed-style table (:mod:`harness.table`) marks each point ✓ or ✗ with the
runner's reasons, so a reader never takes a void number at face value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.resultsets import Record, ResultSet, as_point_record, point_of
from harness.table import markdown_table


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (stable in git)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def doubtful_record(record: Record) -> bool:
    """Failed, or marked invalid by the runner (files from before validity marks are not)."""
    return bool(record.get("failure")) or record.get("valid", True) is False


def _settings(scenario: dict[str, Any]) -> list[str]:
    workload = dict(scenario.get("workload") or {})
    name = workload.pop("name", "?")
    params = ", ".join(f"{k}: {v}" for k, v in workload.items())
    serving = scenario.get("serving") or {}
    load = scenario.get("load") or {}
    points = ", ".join(str(c) for c in load.get("clients") or load.get("rates") or [])
    return [
        f"- workload: `{name}`" + (f" ({params})" if params else ""),
        f"- serving: instances {serving.get('instances', '?')} / timeout "
        f"{serving.get('batching_timeout_ms', '?')} ms / max_batch {serving.get('max_batch', '?')}",
        f"- load: points {points}; warm-up {load.get('warmup_s', '?')} s, "
        f"{load.get('duration_s', '?')} s measured",
    ]


def environment_block(environment: dict[str, Any]) -> list[str]:
    """Machine, versions and git sha of the run, as a two-column table."""
    lines = ["| | |", "|---|---|"]
    for key, value in environment.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
            lines.append(f"| {key} | {shown or '-'} |")
        else:
            lines.append(f"| {key} | {value} |")
    return lines


def scenario_page(result: ResultSet, images: dict[str, str]) -> str:
    """The page of one scenario run; ``images`` maps a caption to a path relative to it."""
    scenario = result.scenario
    state = "complete" if result.complete else "**incomplete** (interrupted or failed)"
    lines = [
        f"# {result.name}",
        "",
        scenario.get("description") or "",
        "",
        *_settings(scenario),
        f"- result file: `{display_path(result.path)}` (started {result.started_at}, {state})",
        "",
        markdown_table(
            "Results: QPS · TP50 · TP99",
            [as_point_record(r) for r in result.records if point_of(r)],
            result.labels,
        ),
        "",
    ]
    if images:
        lines += ["### Plots", ""]
        for caption, path in images.items():
            lines += [f"![{caption}]({path})", ""]
    lines += ["### Environment", "", *environment_block(result.environment), ""]
    return "\n".join(lines)


def index_page(results: dict[str, ResultSet], html_name: str) -> str:
    lines = [
        "# pipebench reports",
        "",
        "- [The seed report, reproduced: our numbers beside the seed's, its conclusions "
        "checked](report.md)",
        f"- [Everything on one page, offline (HTML)]({html_name})",
        "",
        "| scenario | description | systems | complete | doubtful points | result file |",
        "|---|---|---|---|---:|---|",
    ]
    for name in sorted(results):
        result = results[name]
        doubtful = sum(map(doubtful_record, result.records))
        lines.append(
            f"| [{name}]({name}.md) | {result.scenario.get('description') or ''} "
            f"| {', '.join(result.labels)} | {'yes' if result.complete else 'no'} "
            f"| {doubtful} of {len(result.records)} | `{display_path(result.path)}` |"
        )
    return "\n".join(lines) + "\n"
