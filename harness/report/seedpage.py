"""``reports/report.md``: the seed report mirrored section by section, with our numbers.

Each seed table is shown as rows of systems (the seed's, then ours that the seed did not
have) with the seed's number and ours side by side at each load point; each of the seed's
conclusions is checked on our results and marked ✓, ✗ or "not measured".
"""

from __future__ import annotations

from harness.report.pages import doubtful_record
from harness.report.resultsets import ResultSet
from harness.seed import (
    CONCLUSIONS,
    TABLES,
    Conclusion,
    Metric,
    Outcome,
    Results,
    SeedTable,
    find_label,
    find_record,
    metric_of,
    scenario_for,
)

STATUS_MARK = {
    "holds": "✓ holds:",
    "fails": "✗ fails:",
    "inconclusive": "≈ inconclusive:",
    "not measured": "○ not measured:",
}
INTRO = """\
# The seed report, reproduced

Every table of the seed report (`shared/seed/performance-report.en.md`, measured on a GPU
machine with the original torchpipe) beside the same table measured by pipebench on this
machine. Absolute numbers are not comparable across machines and engines and are shown for
orientation only; what must carry over are the seed's **conclusions**, each checked on our
numbers below by the 95 % interval of the quantity each is about (✓ holds, ✗ fails, ≈
inconclusive: the interval straddles the claimed margin, ○ not measured: no results yet).
A ⚠ beside one of our numbers means that point is doubtful (see its scenario page).
"""
LOCAL_VS_RPC = """## Local function vs RPC

The seed measures the pure RPC services first (servers that return prepared data without
computing) as the base of every comparison: when pure RPC throughput is an order of magnitude
above the compute backend's, RPC barely matters; otherwise it can dominate. Our pure-RPC
columns are `thrift` and `triton-rpc`; the resnet50 section checks that claim on our numbers.
"""


def _format(value: float, metric: Metric) -> str:
    return f"{value:.0f}" if metric == "qps" else f"{value:.3g}"


def _ours(result: ResultSet | None, label: str | None, clients: int, metric: Metric) -> str:
    if result is None:
        return "not measured"
    if label is None:
        return "not run"
    record = find_record(result, label, clients)
    value = metric_of(record, metric) if record else None
    if record is None or value is None:
        mine = [r for r in result.records if r.label == label and r.clients == clients]
        skipped = next((r.skipped for r in mine if r.skipped), None)
        if skipped:
            return f"skipped: {skipped}"
        return "failed" if any(r.failure for r in mine) else "not measured"
    return _format(value, metric) + (" ⚠" if doubtful_record(record) else "")


def seed_table(table: SeedTable, results: Results) -> list[str]:
    result = scenario_for(results, table.key)
    unit = "QPS" if table.metric == "qps" else "TP50 ms"
    header = ["seed system", "our system"]
    for n in table.points:
        header += [f"seed {unit} @{n}", f"ours @{n}"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (2 * len(table.points))]
    mapped: set[str] = set()
    for column in table.columns:
        label = find_label(result, column.ours) if result and column.ours else None
        if label:
            mapped.add(label)
        ours_name = label or (column.ours.describe() if column.ours else "(none of ours)")
        cells = [column.seed, ours_name]
        for n in table.points:
            seed = column.values.get(n)
            cells.append(f"{seed:g}" if seed is not None else "-")  # as the seed prints it
            cells.append(_ours(result, label, n, table.metric) if column.ours else "-")
        lines.append("| " + " | ".join(cells) + " |")
    for label in result.labels if result else []:
        if label not in mapped:
            cells = ["-", label]
            for n in table.points:
                cells += ["-", _ours(result, label, n, table.metric)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _conclusion_line(conclusion: Conclusion, outcome: Outcome) -> str:
    evidence = f" ({outcome.evidence})" if outcome.evidence else ""
    return f"- {STATUS_MARK[outcome.status]} {conclusion.statement}{evidence}"


def seed_page(results: Results) -> str:
    outcomes = [(c, c.check(results)) for c in CONCLUSIONS]
    lines = [INTRO, "## The seed's conclusions on our numbers", ""]
    lines += [_conclusion_line(c, o) for c, o in outcomes]
    tally = {s: sum(o.status == s for _, o in outcomes) for s in STATUS_MARK}
    lines += [
        "",
        f"✓ {tally['holds']} hold · ✗ {tally['fails']} fail · ≈ {tally['inconclusive']} "
        f"inconclusive · ○ {tally['not measured']} not measured (each decided by its 95 % "
        "interval against the claimed margin)",
        "",
    ]
    lines.append(LOCAL_VS_RPC)
    section = title = None
    for table in TABLES:
        if table.section != section:
            if section is not None:
                lines += _section_conclusions(section, outcomes)
            section, title = table.section, None
            lines += [f"## {section}", ""]
        if table.title != title:
            title = table.title
            lines += [f"### {title}", ""]
        result = scenario_for(results, table.key)
        link = f"[{result.name}]({result.name}.md)" if result else f"`{table.key}`: no results"
        lines += [f"{table.settings} · scenario {link}", "", *seed_table(table, results), ""]
    if section is not None:
        lines += _section_conclusions(section, outcomes)
    return "\n".join(lines)


def _section_conclusions(section: str, outcomes: list[tuple[Conclusion, Outcome]]) -> list[str]:
    here = [_conclusion_line(c, o) for c, o in outcomes if c.section == section]
    return ["**Conclusions checked:**", "", *here, ""] if here else []
