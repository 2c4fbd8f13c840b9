"""Result files -> ``reports/``: Markdown pages, their PNG figures and one HTML page.

Rendering never runs anything: it reads result files only, so a report can be rebuilt
at any time from the JSON that a run (or CI) left behind.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import InputError
from harness.report.html import html_page
from harness.report.pages import index_page, scenario_page, series_page, series_page_name
from harness.report.plots import (
    batch_plot,
    cdf_plot,
    frame,
    latency_plot,
    qps_plot,
    timeseries_plot,
)
from harness.report.resultsets import Point, ResultSet, latest_by_scenario
from harness.report.seedpage import seed_page
from harness.storage import prepare_dir

HTML_NAME = "report.html"
IMAGE_DIR = "img"


def _figures(result: ResultSet, images: Path) -> dict[str, str]:
    """Draw what this run has data for; caption -> path relative to the report folder."""
    data = frame(result)
    drawn = {
        "QPS by load": qps_plot(result, data, images / f"{result.name}-qps.png"),
        "TP50 and TP99 by load": latency_plot(result, data, images / f"{result.name}-latency.png"),
        "Latency by percentile": cdf_plot(result, images / f"{result.name}-cdf.png"),
        "Formed batch sizes": batch_plot(result, images / f"{result.name}-batches.png"),
    }
    return {caption: f"{IMAGE_DIR}/{path.name}" for caption, path in drawn.items() if path}


def render_reports(paths: list[Path], out_dir: Path) -> list[Path]:
    """Render the newest result of each scenario found in ``paths``; return the files written."""
    results = latest_by_scenario(paths)
    if not results:
        shown = ", ".join(str(p) for p in paths)
        raise InputError(f"{shown}: no result files (*.json) to report on")
    images = prepare_dir(out_dir / IMAGE_DIR)
    pages = {"index": index_page(results, HTML_NAME), "report": seed_page(results)}
    for name in sorted(results):
        result = results[name]
        series: dict[Point, str] = {}
        series_pages: dict[str, str] = {}
        for point in sorted({record.point_key for record in result.records}):
            page = series_page_name(result, point)
            if timeseries_plot(result, point, images / f"{page}.png"):
                series[point] = page
                series_pages[page] = series_page(result, point, f"{IMAGE_DIR}/{page}.png")
        pages[name] = scenario_page(result, _figures(result, images), series)
        pages.update(series_pages)
    written = []
    for name, text in pages.items():
        path = out_dir / f"{name}.md"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    page = out_dir / HTML_NAME
    page.write_text(html_page("pipebench report", pages, out_dir), encoding="utf-8")
    written.append(page)
    return written
