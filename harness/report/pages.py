"""Markdown pages: one per scenario run, and the index that links them.

Every figure a page shows comes from a result file; the page says which one and on which
machine, and the seed-style table (:mod:`harness.table`) marks each point ✓ or ✗ with the
runner's reasons, so a reader never takes a void number at face value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.resultsets import ResultSet, point_text
from harness.results import Environment, Point, PointRecord, ScenarioAsRun
from harness.table import markdown_table


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (stable in git)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def doubtful_record(record: PointRecord) -> bool:
    """Failed, or marked invalid by the runner (files from before validity marks are not).
    A skipped point has no number to doubt."""
    return not record.skipped and (bool(record.failure) or not record.valid)


def _settings(scenario: ScenarioAsRun) -> list[str]:
    workload = dict(scenario.workload)
    name = workload.pop("name", "?")
    params = ", ".join(f"{k}: {v}" for k, v in workload.items())
    serving = scenario.serving
    load = scenario.load
    points = ", ".join(str(c) for c in load.get("clients") or load.get("rates") or [])
    return [
        f"- workload: `{name}`" + (f" ({params})" if params else ""),
        f"- serving: instances {serving.get('instances', '?')} / timeout "
        f"{serving.get('batching_timeout_ms', '?')} ms / max_batch {serving.get('max_batch', '?')}",
        f"- load: points {points}; warm-up {load.get('warmup_s', '?')} s, "
        f"{load.get('duration_s', '?')} s measured",
    ]


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items() if v is not None) or "-"
    if isinstance(value, list):
        return "; ".join(_shown(item) for item in value) or "-"
    return str(value)


def environment_block(environment: Environment) -> list[str]:
    """Machine, versions, GPUs, what the measurement applied and the git sha of the run."""
    lines = ["| | |", "|---|---|"]
    for key, value in environment.model_dump().items():
        if value in ({}, []):
            continue
        lines.append(f"| {key} | {_shown(value)} |")
    return lines


def series_page_name(result: ResultSet, point: Point) -> str:
    kind, value = point
    return f"{result.name}-{kind}-{value:g}"


def scenario_page(
    result: ResultSet, images: dict[str, str], series: dict[Point, str] | None = None
) -> str:
    """The page of one scenario run; ``images`` maps a caption to a path relative to it,
    ``series`` a load point to the name of its time-series page."""
    scenario = result.scenario
    state = "complete" if result.complete else "**incomplete** (interrupted or failed)"
    lines = [
        f"# {result.name}",
        "",
        scenario.description,
        "",
        *_settings(scenario),
        f"- result file: `{display_path(result.path)}` (started {result.started_at}, {state})",
        "",
        markdown_table(
            "Results: QPS · TP50 · TP99",
            result.records,
            result.labels,
        ),
        "",
    ]
    if images:
        lines += ["### Plots", ""]
        for caption, path in images.items():
            lines += [f"![{caption}]({path})", ""]
    if series:
        links = ", ".join(f"[{point_text(p)}]({name}.md)" for p, name in sorted(series.items()))
        lines += [f"Per-window time series (QPS and TP99, every repeat): {links}", ""]
    lines += ["### Environment", "", *environment_block(result.environment), ""]
    return "\n".join(lines)


def series_page(result: ResultSet, point: Point, image: str) -> str:
    """One load point of one run over time: every window of every repeat, and the table of
    each repeat's own values (the spread the median and its interval summarise)."""
    lines = [
        f"# {result.name} · {point_text(point)}: over time",
        "",
        f"Back to [{result.name}]({result.name}.md). Hollow markers: windows before the "
        "reported measurement (the last three of each repeat).",
        "",
        f"![QPS and TP99 per window]({image})",
        "",
        "| system | repeat | QPS | TP50 ms | TP90 ms | TP99 ms | ok | errors | timeouts |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record in result.records:
        if record.point_key != point:
            continue
        for index, r in enumerate(record.per_repeat):
            lines.append(
                f"| {record.label} | {index} | {r.qps:.0f} | {r.p50_ms:.3g} | {r.p90_ms:.3g} "
                f"| {r.p99_ms:.3g} | {r.ok} | {r.errors} | {r.timeouts} |"
            )
    return "\n".join(lines) + "\n"


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
            f"| [{name}]({name}.md) | {result.scenario.description} "
            f"| {', '.join(result.labels)} | {'yes' if result.complete else 'no'} "
            f"| {doubtful} of {len(result.records)} | `{display_path(result.path)}` |"
        )
    return "\n".join(lines) + "\n"
