"""``bench compare``: result files in, regressions and an exit code out; never runs anything.

Each point is judged on three metrics: QPS (bigger is better; in an open-loop scenario it
is the achieved rate, which falls short of the offered rate when a system cannot keep up)
and TP50 and TP99 (smaller is better), so a latency regression fails CI even where QPS is
pinned by the offered rate. A regression must clear two bars, because this machine is
noisy: the change exceeds the threshold AND it is significant given the repeats.
Significance comes from an exact Mann-Whitney rank test on the per-repeat values when there
are enough repeats for the test to reach p < 0.05 at all (4 each), else from the 95 %
confidence intervals not overlapping. A point measured once has no noise estimate: the
threshold alone decides, and the verdict says so. A point skipped on either side (its
system could not run on that machine: no GPU, an optional wheel absent) is ``skipped``,
never a regression. ``normalize_to`` divides every value by
a reference system's value at the same point of the same run, so that runs from different
machines compare as ratios (pipe / thrift).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.report.resultsets import Point, PointRecord, ResultSet, latest_by_scenario, point_text
from harness.stats import median_interval

ALPHA = 0.05
VERDICTS = ("regressed", "incomplete", "improved", "noisy", "unchanged", "skipped", "missing")
#: Verdicts that fail the gate (exit 1).
FAILING = ("regressed", "incomplete")


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    bigger_is_better: bool
    unit: str


METRICS = {
    "qps": Metric("qps", "QPS", True, "QPS"),
    "p50": Metric("p50", "TP50", False, "ms"),
    "p99": Metric("p99", "TP99", False, "ms"),
}
#: (scenario, label, point, metric)
Key = tuple[str, str, Point, str]


@dataclass(frozen=True)
class Sample:
    """One metric of one system at one point: its value and what is known of its noise."""

    value: float
    repeats: tuple[float, ...] = ()
    ci95: tuple[float, float] | None = None
    failure: str | None = None
    #: Why the point was skipped (its system cannot run on that machine): no value at all.
    skipped: str | None = None

    @property
    def empty(self) -> bool:
        """No value: the point failed or was skipped."""
        return bool(self.failure or self.skipped)


@dataclass(frozen=True)
class Verdict:
    key: Key
    verdict: str
    baseline: Sample | None
    current: Sample | None
    #: How the verdict was reached (the test used, or why nothing could be compared).
    basis: str

    @property
    def metric(self) -> Metric:
        return METRICS[self.key[3]]

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None or self.current.empty:
            return None
        if self.baseline.empty or self.baseline.value <= 0:
            return None
        return self.current.value / self.baseline.value - 1


def parse_threshold(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1; anything else is bad input."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < 10:
        raise InputError(f"--threshold: {text!r} is not a positive fraction or percentage (10%)")
    return value


def parse_metrics(text: str) -> tuple[str, ...]:
    """``qps,p50,p99`` -> the metrics to judge; an unknown name is bad input."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise InputError(
            f"--metrics: {', '.join(unknown) or repr(text)} is not one of {', '.join(METRICS)}"
        )
    return names


# -- samples ---------------------------------------------------------------------------------


def _interval(repeats: tuple[float, ...]) -> tuple[float, float] | None:
    return median_interval(repeats)[1]


def _raw_sample(record: PointRecord, metric: str) -> Sample | None:
    """The metric of a record; ``None`` when the record has no value for it."""
    if record.skipped:
        return Sample(0.0, skipped=record.skipped)
    if record.failure:
        return Sample(0.0, failure=record.failure.splitlines()[0])
    if metric == "qps":
        ci = record.qps_ci95
        ci95 = (ci[0], ci[1]) if ci and len(ci) == 2 else None
        return Sample(record.qps, tuple(record.qps_repeats), ci95)
    value = record.latency_ms.get(metric, math.nan)
    if not math.isfinite(value):
        return None
    repeats = tuple(getattr(r, f"{metric}_ms") for r in record.per_repeat)
    if not all(math.isfinite(r) for r in repeats):
        repeats = ()
    return Sample(value, repeats, _interval(repeats))


def _ratio(sample: Sample, ref: Sample) -> Sample | None:
    """``sample / ref``, carrying the noise of both (a conservative interval for the CI)."""
    if ref.empty or ref.value <= 0:
        return None
    if sample.empty:
        return sample
    if ref.repeats and len(ref.repeats) == len(sample.repeats):
        repeats = tuple(s / r for s, r in zip(sample.repeats, ref.repeats, strict=True))
    else:
        repeats = tuple(s / ref.value for s in sample.repeats)
    ci95 = None
    if sample.ci95 and ref.ci95 and ref.ci95[0] > 0:
        ci95 = (sample.ci95[0] / ref.ci95[1], sample.ci95[1] / ref.ci95[0])
    return Sample(sample.value / ref.value, repeats, ci95)


def _reference_label(result: ResultSet, wanted: str) -> str | None:
    """The column ``--normalize-to`` names: a label, or a system name used by one column."""
    if wanted in result.labels:
        return wanted
    by_name = {r.label for r in result.records if r.system == wanted}
    return by_name.pop() if len(by_name) == 1 else None


def samples(
    results: dict[str, ResultSet], normalize_to: str | None, metrics: Sequence[str] = tuple(METRICS)
) -> dict[Key, Sample]:
    """Every (scenario, label, point, metric) of a set of runs, normalized if asked.

    A failed or skipped point carries it in the QPS sample only: one row says so.
    """
    found: dict[Key, Sample] = {}
    for name, result in results.items():
        ref_label = _reference_label(result, normalize_to) if normalize_to else None
        for metric in metrics:
            refs = {
                r.point_key: _raw_sample(r, metric) for r in result.records if r.label == ref_label
            }
            for record in result.records:
                if normalize_to and record.label == ref_label:
                    continue  # always 1.0: nothing to compare
                if (record.failure or record.skipped) and metric != "qps":
                    continue
                sample = _raw_sample(record, metric)
                if sample is not None and normalize_to:
                    ref = refs.get(record.point_key)
                    sample = _ratio(sample, ref) if ref else None
                if sample is not None:
                    found[(name, record.label, record.point_key, metric)] = sample
    return found


# -- significance ----------------------------------------------------------------------------


@cache
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many orderings of n1 x's and n2 y's give each U = #(x < y), U = 0..n1*n2."""
    if n1 == 0 or n2 == 0:
        return (1,)
    counts = [0] * (n1 * n2 + 1)
    for u, c in enumerate(_u_counts(n1 - 1, n2)):  # the largest value is an x: adds 0
        counts[u] += c
    for u, c in enumerate(_u_counts(n1, n2 - 1)):  # the largest value is a y: adds n1
        counts[u + n1] += c
    return tuple(counts)


def min_rank_p(n1: int, n2: int) -> float:
    """The smallest two-sided p the exact rank test can give for these sample sizes."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def rank_test_p(xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Exact two-sided Mann-Whitney p-value (ties count half; fine for float QPS)."""
    u = sum((x < y) + 0.5 * (x == y) for x in xs for y in ys)
    counts = _u_counts(len(xs), len(ys))
    total = sum(counts)
    below = sum(c for k, c in enumerate(counts) if k <= u) / total
    above = sum(c for k, c in enumerate(counts) if k >= u) / total
    return min(1.0, 2 * min(below, above))


def significance(base: Sample, cur: Sample) -> tuple[bool | None, str]:
    """(significant?, how we know); None when one side has a single repeat."""
    nb, nc = len(base.repeats), len(cur.repeats)
    if nb >= 2 and nc >= 2 and min_rank_p(nb, nc) < ALPHA:
        p = rank_test_p(base.repeats, cur.repeats)
        return p < ALPHA, f"rank test p={p:.3f} ({nb}+{nc} repeats)"
    if nb >= 2 and nc >= 2 and base.ci95 and cur.ci95:
        apart = base.ci95[1] < cur.ci95[0] or cur.ci95[1] < base.ci95[0]
        return apart, f"95% CIs {'apart' if apart else 'overlap'} ({nb}+{nc} repeats)"
    return None, "1 repeat: threshold alone"


def judge(
    key: Key, base: Sample | None, cur: Sample | None, threshold: float, bigger_is_better: bool
) -> Verdict:
    if base is None or cur is None:
        why = "not in current" if cur is None else "not in baseline"
        return Verdict(key, "missing", base, cur, why)
    if cur.skipped or base.skipped:
        side, sample = ("", cur) if cur.skipped else ("baseline ", base)
        return Verdict(key, "skipped", base, cur, f"{side}skipped: {sample.skipped}")
    if base.failure:
        return Verdict(key, "missing", base, cur, f"baseline failed: {base.failure}")
    if cur.failure:
        return Verdict(key, "regressed", base, cur, f"failed: {cur.failure}")
    if base.value <= 0:
        return Verdict(key, "missing", base, cur, "baseline measured nothing")
    change = cur.value / base.value - 1
    if abs(change) <= threshold:
        return Verdict(key, "unchanged", base, cur, f"within {threshold:.0%}")
    significant, how = significance(base, cur)
    if significant is False:
        return Verdict(key, "noisy", base, cur, how)
    better = (change > 0) == bigger_is_better
    return Verdict(key, "improved" if better else "regressed", base, cur, how)


def _incomplete(results: dict[str, ResultSet]) -> set[tuple[str, str, Point]]:
    """(scenario, label, point) a run asked for but did not finish (interrupted)."""
    missing = set()
    for name, result in results.items():
        if not result.complete:
            have = {(r.label, r.point_key) for r in result.records}
            missing |= {(name, *key) for key in result.expected_keys() - have}
    return missing


def compare(
    baseline: dict[str, ResultSet],
    current: dict[str, ResultSet],
    threshold: float,
    normalize_to: str | None = None,
    metrics: Sequence[str] = tuple(METRICS),
    allow_incomplete: bool = False,
) -> list[Verdict]:
    """Judge every key of either side. A point an incomplete current run never measured
    fails the gate (``incomplete``) unless ``allow_incomplete``: an interrupted CI run must
    not pass by having measured less."""
    if normalize_to and not any(
        normalize_to in (r.label, r.system)
        for result in [*baseline.values(), *current.values()]
        for r in result.records
    ):
        raise InputError(f"--normalize-to: no system {normalize_to!r} in these results")
    base, cur = samples(baseline, normalize_to, metrics), samples(current, normalize_to, metrics)
    if not {k[:3] for k in base} & {k[:3] for k in cur}:
        raise InputError("BASELINE and CURRENT share no scenario, system and point to compare")
    failed = {k[:3] for side in (base, cur) for k, s in side.items() if s.empty}
    keys = {k for k in base.keys() | cur.keys() if k[3] == "qps" or k[:3] not in failed}
    order = {metric: index for index, metric in enumerate(METRICS)}
    unfinished = _incomplete(current)
    verdicts = []
    for key in sorted(keys, key=lambda k: (k[0], k[1], k[2][0], k[2][1], order[k[3]])):
        if key not in cur and key[:3] in unfinished:
            verdict, why = ("missing", "not in current (run incomplete, allowed)")
            if not allow_incomplete:
                verdict, why = "incomplete", "current run incomplete: point never measured"
            verdicts.append(Verdict(key, verdict, base.get(key), None, why))
            continue
        bigger = METRICS[key[3]].bigger_is_better
        verdicts.append(judge(key, base.get(key), cur.get(key), threshold, bigger))
    return verdicts


def compare_paths(
    baseline: Path,
    current: Path,
    threshold: float,
    normalize_to: str | None,
    metrics: Sequence[str] = tuple(METRICS),
    allow_incomplete: bool = False,
) -> list[Verdict]:
    return compare(
        latest_by_scenario([baseline]),
        latest_by_scenario([current]),
        threshold,
        normalize_to,
        metrics,
        allow_incomplete,
    )


# -- output ----------------------------------------------------------------------------------


def _value(sample: Sample | None, metric: Metric, normalized: bool) -> str:
    if sample is None:
        return "-"
    if sample.skipped:
        return "skipped"
    if sample.failure:
        return "failed"
    form = ".3f" if normalized else ".0f" if metric.bigger_is_better else ".3g"
    text = f"{sample.value:{form}}"
    if sample.ci95 and len(sample.repeats) >= 2:
        low, high = sample.ci95
        text += f" [{low:{form}}, {high:{form}}]"
    return text


def _measured_once(verdict: Verdict) -> bool:
    samples = (verdict.baseline, verdict.current)
    return all(s is not None and not s.empty for s in samples) and any(
        len(s.repeats) < 2 for s in samples if s is not None
    )


def markdown(verdicts: list[Verdict], threshold: float, normalize_to: str | None) -> str:
    normalized = normalize_to is not None
    what = f"values / {normalize_to}'s (same run)" if normalized else "QPS, TP50 and TP99 (ms)"
    lines = [
        f"### compare: {what}, threshold {threshold:.0%}",
        "",
        "| scenario | system | point | metric | baseline | current | change | verdict | basis |",
        "|---|---|---:|---|---:|---:|---:|---|---|",
    ]
    for v in verdicts:
        change = "-" if v.change is None else f"{v.change:+.1%}"
        name, label, point, _ = v.key
        metric = v.metric
        lines.append(
            f"| {name} | {label} | {point_text(point)} | {metric.title} "
            f"| {_value(v.baseline, metric, normalized)} | {_value(v.current, metric, normalized)} "
            f"| {change} | {v.verdict} | {v.basis} |"
        )
    counts = {verdict: sum(v.verdict == verdict for v in verdicts) for verdict in VERDICTS}
    lines += ["", ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n) + "."]
    regressed = sorted(
        {v.metric.title for v in verdicts if v.verdict == "regressed"},
        key=[m.title for m in METRICS.values()].index,
    )
    if regressed:
        lines.append(f"Regressed: {', '.join(regressed)}.")
    if counts["incomplete"]:
        lines.append(
            "The current run is incomplete (interrupted): points it never measured fail the "
            "gate; --allow-incomplete compares what it has."
        )
    if any(_measured_once(v) for v in verdicts):
        lines.append(
            "Points measured once have no noise estimate: the threshold alone decided them."
        )
    return "\n".join(lines)


def benchmark_json(
    verdicts: list[Verdict], normalize_to: str | None, bigger_is_better: bool = True
) -> list[dict[str, Any]]:
    """The current values in github-action-benchmark's format: ``customBiggerIsBetter``
    (QPS) or, with ``bigger_is_better=False``, ``customSmallerIsBetter`` (TP50, TP99)."""
    entries = []
    for v in verdicts:
        metric = v.metric
        if metric.bigger_is_better != bigger_is_better:
            continue
        if v.current is None or v.current.empty:
            continue
        name, label, point, _ = v.key
        suffix = "" if metric.name == "qps" else f" / {metric.title}"
        entry: dict[str, Any] = {
            "name": f"{name} / {label} / {point_text(point)}{suffix}",
            "unit": f"x {normalize_to}" if normalize_to else metric.unit,
            "value": round(v.current.value, 6),
            "extra": f"{v.verdict}: {v.basis}",
        }
        if v.current.ci95 and len(v.current.repeats) >= 2:
            entry["range"] = f"± {(v.current.ci95[1] - v.current.ci95[0]) / 2:.6g}"
        elif len(v.current.repeats) >= 2:
            entry["range"] = f"± {statistics.stdev(v.current.repeats):.6g}"
        entries.append(entry)
    return entries


def latency_json_path(path: Path) -> Path:
    """Where the ``customSmallerIsBetter`` entries go: beside ``path`` (``bench.json`` ->
    ``bench-latency.json``), since github-action-benchmark reads one direction per file."""
    return path.with_name(f"{path.stem}-latency{path.suffix or '.json'}")


def write_benchmark_json(path: Path, verdicts: list[Verdict], normalize_to: str | None) -> None:
    """QPS entries to ``path``; latency entries (if any were judged) beside it."""
    files = {path: benchmark_json(verdicts, normalize_to, bigger_is_better=True)}
    latency = benchmark_json(verdicts, normalize_to, bigger_is_better=False)
    if latency:
        files[latency_json_path(path)] = latency
    for target, entries in files.items():
        try:
            target.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{target}: cannot write: {exc.strerror or exc}") from None


def has_regression(verdicts: list[Verdict]) -> bool:
    return any(v.verdict in FAILING for v in verdicts)
