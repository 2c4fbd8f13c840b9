"""PNG figures of one scenario run: QPS, TP50/TP99, latency CDF and formed batch sizes.

Figures are plain :class:`~matplotlib.figure.Figure` objects saved through the Agg
renderer, never pyplot: no display, no global figure state, the same pixels everywhere.
Failed points are left out of every figure (the tables show them); a figure with nothing
to show is not drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from harness import histogram
from harness.report.resultsets import Point, ResultSet, batch_sizes, point_text
from harness.results import PointRecord

DPI = 100


def frame(result: ResultSet) -> pd.DataFrame:
    """One row per measured record: label, point, qps (and its CI), p50, p99."""
    rows = []
    for record in result.records:
        if not record.measured:
            continue
        latency = record.latency_ms
        ci = record.qps_ci95 or [np.nan, np.nan]
        kind, x = record.point_key
        rows.append(
            {
                "label": record.label,
                "kind": kind,
                "x": x,
                "qps": record.qps,
                "qps_lo": float(ci[0]),
                "qps_hi": float(ci[1]),
                "p50": float(latency.get("p50", np.nan)),
                "p99": float(latency.get("p99", np.nan)),
            }
        )
    columns = ["label", "kind", "x", "qps", "qps_lo", "qps_hi", "p50", "p99"]
    return pd.DataFrame(rows, columns=columns)


@contextmanager
def _figure(path: Path, ncols: int = 1, width: float = 6.4) -> Iterator[list[Axes]]:
    figure = Figure(figsize=(width * ncols, 4.0), dpi=DPI)
    axes = figure.subplots(1, ncols, squeeze=False)[0].tolist()
    yield axes
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)


def _x_label(data: pd.DataFrame) -> str:
    return "offered rate (req/s)" if (data["kind"] == "rate").all() else "clients"


def _wide_range(values: pd.Series) -> bool:
    positive = values[values > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 30


def colors(result: ResultSet) -> dict[str, str]:
    """One color per system, the same in every figure of the run."""
    return {label: f"C{index % 10}" for index, label in enumerate(result.labels)}


def _lines(ax: Axes, data: pd.DataFrame, column: str, palette: dict[str, str], title: str) -> None:
    """One line per system over the load points; bars when there is a single point."""
    points = sorted(data["x"].unique())
    labels = [label for label in palette if label in set(data["label"])]
    if len(points) == 1:
        values = [data.loc[data["label"] == label, column].mean() for label in labels]
        ax.bar(labels, values, color=[palette[label] for label in labels])
        ax.tick_params(axis="x", labelrotation=20)
        ax.set_xlabel(f"{points[0]:g} {_x_label(data)}")
    else:
        for label in labels:
            rows = data[data["label"] == label].sort_values("x")
            ax.plot(rows["x"], rows[column], marker="o", color=palette[label], label=label)
            if column == "qps" and rows["qps_lo"].notna().all():
                ax.fill_between(
                    rows["x"], rows["qps_lo"], rows["qps_hi"], color=palette[label], alpha=0.2
                )
        if points[0] > 0 and points[-1] / points[0] >= 8:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(points, [f"{p:g}" for p in points])
        ax.set_xlabel(_x_label(data))
        ax.legend(fontsize="small")
    if _wide_range(data[column]):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def qps_plot(result: ResultSet, data: pd.DataFrame, path: Path) -> Path | None:
    if data.empty:
        return None
    with _figure(path) as (ax,):
        _lines(ax, data, "qps", colors(result), f"{result.name}: QPS")
        ax.set_ylabel("QPS")
    return path


def latency_plot(result: ResultSet, data: pd.DataFrame, path: Path) -> Path | None:
    if data.empty or data["p50"].isna().all():
        return None
    with _figure(path, ncols=2, width=5.2) as (left, right):
        _lines(left, data, "p50", colors(result), "TP50 (ms)")
        _lines(right, data, "p99", colors(result), "TP99 (ms)")
        left.set_ylabel("latency (ms)")
    return path


#: The quantiles every record carries: a CDF for files written before histograms were kept.
_QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
#: HdrHistogram-style percentile axis: x = 1 / (1 - share), labelled as percentiles.
_PERCENTILE_TICKS = {2.0: "50%", 10.0: "90%", 100.0: "99%", 1e3: "99.9%", 1e4: "99.99%"}


def _percentile_curve(record: PointRecord) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(1 / (1 - share), latency ms, exact?) of the record's latency distribution.

    From the histogram when the record has one (every occupied bucket: exact to its 3
    significant digits); else from the quantiles an older file kept. The largest value
    sits at share 1 - 1/count, the last step HdrHistogram's plots show.
    """
    if record.histogram:
        decoded = histogram.decode(record.histogram)
        latency, shares = histogram.cdf(decoded)
        if latency.size:
            floor = 1 / decoded.get_total_count()
            return 1 / np.maximum(1 - shares, floor), latency, True
    known = [
        (1 / (1 - share), float(record.latency_ms[key]))
        for key, share in _QUANTILES.items()
        if math.isfinite(record.latency_ms.get(key, math.nan))
    ]
    if len(known) < 2:
        return None
    x, y = zip(*known, strict=True)
    return np.asarray(x), np.asarray(y), False


def cdf_plot(result: ResultSet, path: Path) -> Path | None:
    """Latency by percentile per system, one panel per load point (HdrHistogram style)."""
    panels: dict[Point, list[tuple[str, tuple[np.ndarray, np.ndarray, bool]]]] = {}
    for record in result.records:
        curve = _percentile_curve(record) if record.measured else None
        if curve:
            panels.setdefault(record.point_key, []).append((record.label, curve))
    if not panels:
        return None
    palette = colors(result)
    with _figure(path, ncols=len(panels), width=4.2) as axes:
        for ax, point in zip(axes, sorted(panels), strict=True):
            right = 2.0
            for label, (x, y, exact) in panels[point]:
                style = {"drawstyle": "steps-post"} if exact else {"marker": "o", "markersize": 3}
                ax.plot(x, y, label=label, color=palette[label], **style)
                right = max(right, float(x.max()))
            ax.set_xscale("log")
            ax.set_xlim(1.0, right * 1.2)
            ticks = {t: name for t, name in _PERCENTILE_TICKS.items() if t <= right * 1.2}
            ax.set_xticks(list(ticks), list(ticks.values()))
            ax.xaxis.set_minor_formatter(NullFormatter())
            low = min(float(y.min()) for _, (_, y, _) in panels[point])
            high = max(float(y.max()) for _, (_, y, _) in panels[point])
            if low > 0 and high / low > 10:  # tails an order of magnitude out: log scale
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.set_xlabel("percentile")
            ax.set_title(point_text(point))
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("latency (ms)")
        axes[0].legend(fontsize="x-small")
    return path


def timeseries_plot(result: ResultSet, point: Point, path: Path) -> Path | None:
    """QPS and TP99 per window over the point's repeats: warm-up effects and drift show.

    Windows outside the reported measurement (before the last three of a repeat) are drawn
    hollow; each repeat is its own line segment, so the gaps between repeats stay gaps.
    """
    records = [r for r in result.records if r.point_key == point and r.measured and r.windows]
    if not records:
        return None
    palette = colors(result)
    with _figure(path, ncols=2, width=5.2) as (left, right):
        for record in records:
            color = palette[record.label]
            for repeat in sorted({w.repeat for w in record.windows}):
                windows = [w for w in record.windows if w.repeat == repeat]
                x = [w.start_s + w.duration_s / 2 for w in windows]
                label = record.label if repeat == 0 else None
                for ax, values in (
                    (left, [w.qps for w in windows]),
                    (right, [math.nan if w.p99_ms is None else w.p99_ms for w in windows]),
                ):
                    ax.plot(x, values, color=color, label=label)
                    hollow = [
                        (xi, v)
                        for xi, v, w in zip(x, values, windows, strict=True)
                        if not w.measured
                    ]
                    if hollow:
                        hx, hv = zip(*hollow, strict=True)
                        ax.scatter(hx, hv, facecolors="none", edgecolors=color)
                    ax.scatter(
                        [xi for xi, w in zip(x, windows, strict=True) if w.measured],
                        [v for v, w in zip(values, windows, strict=True) if w.measured],
                        color=color,
                        s=12,
                    )
        left.set_title(f"QPS per window · {point_text(point)}")
        right.set_title(f"TP99 (ms) per window · {point_text(point)}")
        for ax in (left, right):
            ax.set_xlabel("time since the first window (s)")
            ax.grid(True, alpha=0.3)
        left.legend(fontsize="x-small")
    return path


def batch_plot(result: ResultSet, path: Path) -> Path | None:
    """Formed batch sizes per system: one panel per system, one bar group per point."""
    by_label: dict[str, list[tuple[str, dict[int, int]]]] = {}
    for record in result.records:
        sizes = batch_sizes(record) if record.measured else {}
        if sizes:
            by_label.setdefault(record.label, []).append((point_text(record.point_key), sizes))
    if not any(max(s) > 1 for groups in by_label.values() for _, s in groups):
        return None  # every batch held one request: nothing to see
    labels = [label for label in result.labels if label in by_label]
    with _figure(path, ncols=len(labels), width=4.2) as axes:
        for ax, label in zip(axes, labels, strict=True):
            groups = by_label[label]
            sizes = list(range(1, max(size for _, s in groups for size in s) + 1))
            width = 0.8 / len(groups)
            for index, (name, counts) in enumerate(groups):
                total = sum(counts.values())
                shares = [counts.get(size, 0) / total for size in sizes]
                offsets = np.arange(len(sizes)) + (index - (len(groups) - 1) / 2) * width
                ax.bar(offsets, shares, width=width, label=name, color=f"C{index}")
            ax.set_xticks(range(len(sizes)), [str(size) for size in sizes])
            ax.set_xlabel("formed batch size")
            ax.set_title(label)
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].set_ylabel("share of batches")
        axes[0].legend(fontsize="x-small")
    return path
