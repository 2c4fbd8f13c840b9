"""``bench compare``: result files in, regressions and an exit code out; never runs anything.

A regression must clear two bars, because this machine is noisy: the change in QPS exceeds
the threshold AND it is significant given the repeats. Significance comes from an exact
Mann-Whitney rank test on the per-repeat QPS when there are enough repeats for the test to
reach p < 0.05 at all (4 each), else from the 95 % confidence intervals not overlapping.
A point measured once has no noise estimate: the threshold alone decides, and the verdict
says so. ``normalize_to`` divides every QPS by a reference system's QPS at the same point of
the same run, so that runs from different machines compare as ratios (pipe / thrift).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.report.resultsets import (
    Point,
    Record,
    ResultSet,
    latest_by_scenario,
    point_of,
    point_text,
)

ALPHA = 0.05
VERDICTS = ("regressed", "improved", "noisy", "unchanged", "missing")
Key = tuple[str, str, Point]


@dataclass(frozen=True)
class Sample:
    """One system at one point: the value compared, and what is known about its noise."""

    value: float
    repeats: tuple[float, ...] = ()
    ci95: tuple[float, float] | None = None
    failure: str | None = None


@dataclass(frozen=True)
class Verdict:
    key: Key
    verdict: str
    baseline: Sample | None
    current: Sample | None
    #: How the verdict was reached (the test used, or why nothing could be compared).
    basis: str

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None or self.current.failure:
            return None
        if self.baseline.failure or self.baseline.value <= 0:
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


# -- samples ---------------------------------------------------------------------------------


def _raw_sample(record: Record) -> Sample:
    if record.get("failure"):
        return Sample(0.0, failure=str(record["failure"]).splitlines()[0])
    repeats = tuple(float(q) for q in record.get("qps_repeats") or ())
    ci = record.get("qps_ci95")
    ci95 = (float(ci[0]), float(ci[1])) if isinstance(ci, list | tuple) and len(ci) == 2 else None
    return Sample(float(record.get("qps") or 0.0), repeats, ci95)


def _ratio(sample: Sample, ref: Sample) -> Sample | None:
    """``sample / ref``, carrying the noise of both (a conservative interval for the CI)."""
    if ref.failure or ref.value <= 0:
        return None
    if sample.failure:
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
    by_name = {r["label"] for r in result.records if r.get("system") == wanted}
    return by_name.pop() if len(by_name) == 1 else None


def samples(results: dict[str, ResultSet], normalize_to: str | None) -> dict[Key, Sample]:
    """Every (scenario, label, point) of a set of runs, normalized if asked."""
    found: dict[Key, Sample] = {}
    for name, result in results.items():
        ref_label = _reference_label(result, normalize_to) if normalize_to else None
        refs = {point_of(r): _raw_sample(r) for r in result.records if r["label"] == ref_label}
        for record in result.records:
            if normalize_to and record["label"] == ref_label:
                continue  # always 1.0: nothing to compare
            point = point_of(record)
            assert point is not None  # load_result_set guarantees it
            sample: Sample | None = _raw_sample(record)
            if normalize_to:
                ref = refs.get(point)
                sample = _ratio(sample, ref) if ref else None  # type: ignore[arg-type]
            if sample is not None:
                found[(name, record["label"], point)] = sample
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


def judge(key: Key, base: Sample | None, cur: Sample | None, threshold: float) -> Verdict:
    if base is None or cur is None:
        why = "not in current" if cur is None else "not in baseline"
        return Verdict(key, "missing", base, cur, why)
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
    return Verdict(key, "improved" if change > 0 else "regressed", base, cur, how)


def compare(
    baseline: dict[str, ResultSet],
    current: dict[str, ResultSet],
    threshold: float,
    normalize_to: str | None = None,
) -> list[Verdict]:
    if normalize_to and not any(
        normalize_to in (r["label"], r.get("system"))
        for result in [*baseline.values(), *current.values()]
        for r in result.records
    ):
        raise InputError(f"--normalize-to: no system {normalize_to!r} in these results")
    base, cur = samples(baseline, normalize_to), samples(current, normalize_to)
    keys = sorted(base.keys() | cur.keys(), key=lambda k: (k[0], k[1], k[2][0], k[2][1]))
    if not base.keys() & cur.keys():
        raise InputError("BASELINE and CURRENT share no scenario, system and point to compare")
    return [judge(key, base.get(key), cur.get(key), threshold) for key in keys]


def compare_paths(
    baseline: Path, current: Path, threshold: float, normalize_to: str | None
) -> list[Verdict]:
    return compare(
        latest_by_scenario([baseline]), latest_by_scenario([current]), threshold, normalize_to
    )


# -- output ----------------------------------------------------------------------------------


def _value(sample: Sample | None, normalized: bool) -> str:
    if sample is None:
        return "-"
    if sample.failure:
        return "failed"
    text = f"{sample.value:.3f}" if normalized else f"{sample.value:.0f}"
    if sample.ci95 and len(sample.repeats) >= 2:
        low, high = sample.ci95
        text += f" [{low:.3f}, {high:.3f}]" if normalized else f" [{low:.0f}, {high:.0f}]"
    return text


def _measured_once(verdict: Verdict) -> bool:
    samples = (verdict.baseline, verdict.current)
    return all(s is not None and not s.failure for s in samples) and any(
        len(s.repeats) < 2 for s in samples if s is not None
    )


def markdown(verdicts: list[Verdict], threshold: float, normalize_to: str | None) -> str:
    normalized = normalize_to is not None
    what = f"QPS / {normalize_to} QPS (same run)" if normalized else "QPS"
    lines = [
        f"### compare: {what}, threshold {threshold:.0%}",
        "",
        "| scenario | system | point | baseline | current | change | verdict | basis |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for v in verdicts:
        change = "-" if v.change is None else f"{v.change:+.1%}"
        name, label, point = v.key
        lines.append(
            f"| {name} | {label} | {point_text(point)} | {_value(v.baseline, normalized)} "
            f"| {_value(v.current, normalized)} | {change} | {v.verdict} | {v.basis} |"
        )
    counts = {verdict: sum(v.verdict == verdict for v in verdicts) for verdict in VERDICTS}
    lines += ["", ", ".join(f"{n} {verdict}" for verdict, n in counts.items() if n) + "."]
    if any(_measured_once(v) for v in verdicts):
        lines.append(
            "Points measured once have no noise estimate: the threshold alone decided them."
        )
    return "\n".join(lines)


def benchmark_json(verdicts: list[Verdict], normalize_to: str | None) -> list[dict[str, Any]]:
    """The current values in github-action-benchmark's ``customBiggerIsBetter`` format."""
    unit = f"x {normalize_to}" if normalize_to else "QPS"
    entries = []
    for v in verdicts:
        if v.current is None or v.current.failure:
            continue
        name, label, point = v.key
        entry: dict[str, Any] = {
            "name": f"{name} / {label} / {point_text(point)}",
            "unit": unit,
            "value": round(v.current.value, 6),
            "extra": f"{v.verdict}: {v.basis}",
        }
        if v.current.ci95 and len(v.current.repeats) >= 2:
            entry["range"] = f"± {(v.current.ci95[1] - v.current.ci95[0]) / 2:.6g}"
        elif len(v.current.repeats) >= 2:
            entry["range"] = f"± {statistics.stdev(v.current.repeats):.6g}"
        entries.append(entry)
    return entries


def write_benchmark_json(path: Path, verdicts: list[Verdict], normalize_to: str | None) -> None:
    entries = benchmark_json(verdicts, normalize_to)
    try:
        path.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def has_regression(verdicts: list[Verdict]) -> bool:
    return any(v.verdict == "regressed" for v in verdicts)
