"""Where does the spread of our numbers come from? Measure each candidate cause.

For pipe, pipe+thrift, thrift and triton at 1 and 10 clients, each variant below runs the
harness's own paired rounds (:mod:`harness.rounds`) and reports, per system and point:

- ``cv_rounds``: round-to-round coefficient of variation of QPS (what the interval sees);
- ``cv_windows``: window-to-window CV inside a turn;
- ``ratio_hw``: half-width (%) of the 95 % interval of the QPS ratio to thrift;
- ``tp50_rule``: share of turns whose 3 windows' TP50 agree within 10 % (the old rule's
  latency half), beside ``qps_rule``, the same for QPS.

Variants (one cause changed at a time): the defaults; shorter and longer turns; a shorter
warm-up; garbage collection off in the load generator; a 1 ms switch interval; the CPU
placement (:mod:`harness.affinity`: the default, unpinned, servers and harness on
disjoint cores); a fixed system order instead of the rotation. Each row also says how
much of the machine other processes used meanwhile (:mod:`harness.interference`). Plus the cost
of recording one sample: a bare call loop against the same loop through the recorder.

And the machine's own floor, which no variant can beat: a fixed loop per CPU, in short
windows and at a turn's length on all CPUs at once (do they slow down together?), and how
many rounds the median interval would need for ±5 % at that floor
(``--variants none`` measures only the floor).

It prints a table per variant, then what it recommends, and as its last line one JSON
object. Run it on a quiet machine: ``flock /tmp/bench.lock .venv/bin/python
benchmarks/noise.py [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from engines.null import NullClient
from engines.workloads import create_workload
from harness.affinity import Placement, plan
from harness.interference import machine_cpus
from harness.loadgen import Plan, ThreadHost, drive
from harness.measurement import Timing
from harness.rounds import Contender, PointPlan, measure_rounds, rotation
from harness.scenario import Scenario, load_scenario
from harness.stats import (
    fixed_loop_rates,
    half_width_pct,
    median_interval,
    paired_ratios,
    window_stats,
    within,
)

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ["pipe", "pipe+thrift", "thrift", "triton"]
POINTS = (1, 10)


def _median(values: Iterable[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def _cv(values: list[float]) -> float:
    values = [v for v in values if math.isfinite(v)]
    if len(values) < 2 or statistics.fmean(values) <= 0:
        return math.nan
    return 100 * statistics.stdev(values) / statistics.fmean(values)


@contextlib.contextmanager
def _gc_off() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextlib.contextmanager
def _switch_interval(seconds: float) -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


Variant = tuple[
    str, dict[str, float], Callable[[list[Contender]], contextlib.AbstractContextManager]
]


def _none(_: list[Contender]) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


VARIANTS: list[Variant] = [
    ("defaults", {}, _none),
    ("turn 0.6 s", {"duration_s": 0.6}, _none),
    ("turn 2.4 s", {"duration_s": 2.4}, _none),
    ("warm-up 0.1 s", {"warmup_s": 0.1}, _none),
    ("gc off", {}, lambda c: _gc_off()),
    ("switch 1 ms", {}, lambda c: _switch_interval(0.001)),
    ("unpinned", {"affinity": "none"}, _none),
    ("split cores", {"affinity": "split"}, _none),
    ("fixed order", {"fixed_order": 1}, _none),
]


def _scenario(rounds: int, changes: dict[str, float]) -> Scenario:
    base = load_scenario(ROOT / "scenarios" / "hello_world.yaml")
    systems = [s for s in base.systems if s.column in SYSTEMS]
    load_changes = {k: v for k, v in changes.items() if k in ("duration_s", "warmup_s", "affinity")}
    load = base.load.model_copy(
        update={"repeats": rounds, "max_repeats": rounds, "seed": 1, **load_changes}
    )
    return base.model_copy(update={"systems": systems, "load": load})


def _turn_rules(run) -> tuple[bool, bool]:
    windows = window_stats(run.samples, run.boundaries_ns)[-3:]
    return within([w.qps for w in windows], 10), within([w.p50_ms for w in windows], 10)


def measure_variant(name: str, changes: dict[str, float], context, rounds: int) -> list[dict]:
    scenario = _scenario(rounds, changes)
    placement = plan(scenario.load.affinity)
    with placement.applied():
        return _measure_placed(name, changes, context, scenario, placement)


def _measure_placed(name, changes, context, scenario: Scenario, placement: Placement) -> list[dict]:
    contenders = [Contender.create(scenario, spec, placement) for spec in scenario.systems]
    rows = []
    try:
        for contender in contenders:
            contender.start(first=True)
        with context(contenders):
            for index, point in enumerate(POINTS):
                for contender in contenders:
                    contender.next_point()
                plan = PointPlan(scenario.load, point, index, run_seed=1, budget_s=None)
                order = (lambda n, r: list(range(n))) if changes.get("fixed_order") else rotation
                measure_rounds(contenders, plan, _skip, _skip, _skip, order=order)
                rows += _rows(name, point, contenders)
    finally:
        for contender in contenders:
            contender.stop()
    return rows


def _skip(*_: object) -> None:
    return None


def _rows(variant: str, point: int, contenders: list[Contender]) -> list[dict]:
    base = next(c for c in contenders if c.label == "thrift")
    rows = []
    for contender in contenders:
        runs = [contender.runs[r] for r in sorted(contender.runs)]
        qps = [run.qps for run in runs]
        windows = [w.qps for run in runs for w in window_stats(run.samples, run.boundaries_ns)]
        rules = [_turn_rules(run) for run in runs]
        common = sorted(set(contender.runs) & set(base.runs))
        ratios = paired_ratios(
            [contender.runs[r].qps for r in common], [base.runs[r].qps for r in common]
        )
        rows.append(
            {
                "variant": variant,
                "system": contender.label,
                "clients": point,
                "qps": statistics.median(qps) if qps else math.nan,
                "cv_rounds": _cv(qps),
                "cv_windows": _cv(windows),
                "qps_hw": half_width_pct(*median_interval(qps)),
                "ratio_hw": None if contender is base else half_width_pct(*median_interval(ratios)),
                "others_pct": _median(run.others_pct(machine_cpus()) for run in runs),
                "qps_rule": sum(q for q, _ in rules) / len(rules) if rules else math.nan,
                "tp50_rule": sum(t for _, t in rules) / len(rules) if rules else math.nan,
            }
        )
    return rows


def machine_floor(cpu: int, slices: int = 40, slice_s: float = 0.25) -> dict[str, float]:
    """The machine's own spread on one CPU: a fixed pure-Python loop timed in ``slices``
    windows as long as a turn's, nothing else of ours running. No variant can be steadier
    than this; on a shared virtual machine the host's other tenants show up here."""
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        rates = fixed_loop_rates(slices, slice_s)
    finally:
        os.sched_setaffinity(0, original)
    return {"cv": _cv(rates), "max_min": max(rates) / min(rates)}


def _loop_on(cpu: int, start: float, slices: int, slice_s: float, out: mp.Queue) -> None:
    os.sched_setaffinity(0, {cpu})
    while time.time() < start:
        pass
    out.put((cpu, fixed_loop_rates(slices, slice_s)))


def floors_together(slices: int, slice_s: float) -> dict[int, list[float]]:
    """The fixed loop on every CPU at once, windows aligned: do the CPUs slow down together?

    If they did, a loop timed on an idle CPU beside a turn could correct the turn's QPS
    for the machine's speed; on a host whose vCPUs are shared independently, they don't."""
    cpus = sorted(os.sched_getaffinity(0))
    out: mp.Queue = mp.Queue()
    start = time.time() + 0.5
    workers = [mp.Process(target=_loop_on, args=(c, start, slices, slice_s, out)) for c in cpus]
    for worker in workers:
        worker.start()
    found = dict(out.get() for _ in workers)
    for worker in workers:
        worker.join()
    return found


def rounds_needed(cv_pct: float, precision_pct: float, trials: int = 400) -> int | None:
    """Rounds the median interval (:func:`harness.stats.median_interval`) needs for its
    half-width to be within ``precision_pct`` in most trials, when turns vary by ``cv_pct``
    on their own (simulated normal noise): the least any method needs on such a machine."""
    rng = random.Random(1)
    for rounds in range(6, 200):
        widths = []
        for _ in range(trials):
            values = [rng.gauss(1.0, cv_pct / 100) for _ in range(rounds)]
            width = half_width_pct(*median_interval(values))
            widths.append(math.inf if width is None else width)
        if statistics.median(widths) <= precision_pct:
            return rounds
    return None


def recording_cost(seconds: float = 1.0) -> float:
    """Calls/s through the recorder (the null system's host) over a bare call loop."""
    client = NullClient("echo", {})
    request = create_workload("echo", {}).make_request()
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        client.call(request)
        count += 1
    bare = count / (time.perf_counter() - began)
    host = ThreadHost([NullClient("echo", {})], [request], Plan("closed", senders=1, timeout_s=1))
    try:
        run = drive([host], Timing(0.1, seconds / 3, 3, math.inf), 1.0)
    finally:
        host.close()
    return run.qps / bare


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--variants", default="", help="comma-separated subset")
    parser.add_argument("--floor-slices", type=int, default=30, help="windows of the floor")
    parser.add_argument(
        "--floor-window-s",
        type=float,
        default=1.2,
        help="their length: a turn's (1.2 s), or a round's when turns are sliced (~20 s)",
    )
    args = parser.parse_args()
    wanted = {v.strip() for v in args.variants.split(",") if v.strip()}
    rows: list[dict] = []
    began = time.perf_counter()
    for name, changes, context in VARIANTS:
        if wanted and name not in wanted:
            continue
        print(f"# {name}", file=sys.stderr, flush=True)
        found = measure_variant(name, changes, context, args.rounds)
        rows += found
        print(f"\n### {name}\n")
        print(
            "| system | clients | QPS | CV rounds % | CV windows % | ± QPS % | ± ratio % "
            "| QPS rule | TP50 rule |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in found:
            print(
                f"| {r['system']} | {r['clients']} | {r['qps']:.0f} | {_fmt(r['cv_rounds'])} "
                f"| {_fmt(r['cv_windows'])} | {_fmt(r['qps_hw'])} | {_fmt(r['ratio_hw'])} "
                f"| {r['qps_rule']:.2f} | {r['tp50_rule']:.2f} |"
            )
    summary = {}
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        summary[name] = {
            "median_cv_rounds": _median(r["cv_rounds"] for r in mine),
            "median_ratio_hw": _median(r["ratio_hw"] for r in mine),
            "tp50_rule_pass": statistics.fmean(r["tp50_rule"] for r in mine),
            "qps_rule_pass": statistics.fmean(r["qps_rule"] for r in mine),
            "others_cpu_pct": _median(r["others_pct"] for r in mine),
        }
    cost = recording_cost()
    floors = {cpu: machine_floor(cpu) for cpu in sorted(os.sched_getaffinity(0))}
    # At a turn's length (the default 1.2 s measured), or a round's, on every CPU at once.
    together = floors_together(args.floor_slices, args.floor_window_s)
    turn_cv = {cpu: _cv(rates) for cpu, rates in together.items()}
    rates = list(together.values())
    correlation = statistics.correlation(rates[0], rates[1]) if len(rates) > 1 else math.nan
    needed = rounds_needed(statistics.fmean(turn_cv.values()), 5.0)
    ranked = [n for n in summary if math.isfinite(summary[n]["median_cv_rounds"])]
    best = min(ranked, key=lambda n: summary[n]["median_cv_rounds"]) if ranked else None
    print("\n### Summary\n")
    print(
        "| variant | median CV rounds % | median ± ratio % | QPS rule pass | TP50 rule pass "
        "| others' CPU % |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(
            f"| {name} | {_fmt(s['median_cv_rounds'])} | {_fmt(s['median_ratio_hw'])} "
            f"| {s['qps_rule_pass']:.2f} | {s['tp50_rule_pass']:.2f} "
            f"| {_fmt(s['others_cpu_pct'])} |"
        )
    print(f"\nrecording a sample keeps {cost:.2f} of a bare call loop's rate")
    for cpu, floor in floors.items():
        print(
            f"machine floor, CPU {cpu}: a fixed loop in 0.25 s windows varies by "
            f"{floor['cv']:.1f} % (max/min {floor['max_min']:.2f})"
        )
    for cpu, cv in turn_cv.items():
        print(f"machine floor in {args.floor_window_s:g} s windows, CPU {cpu}: {cv:.1f} %")
    print(
        f"the CPUs' speeds correlate by {correlation:.2f} (1: they slow down together, "
        "and a loop on one could correct a turn on the other; 0: independent)"
    )
    print(
        f"rounds the median interval needs for ±5 % at that floor: {needed or 'over 200'} "
        "(at best: turns of the same system vary at least that much)"
    )
    if best:
        print(f"recommendation: the lowest round-to-round spread comes with '{best}'")
    print(
        json.dumps(
            {
                "minutes": round((time.perf_counter() - began) / 60, 1),
                "best": best,
                "recording_cost_ratio": round(cost, 3),
                "machine_floor_cv": {cpu: round(f["cv"], 2) for cpu, f in floors.items()},
                "floor_window_s": args.floor_window_s,
                "window_floor_cv": {cpu: round(cv, 2) for cpu, cv in turn_cv.items()},
                "cpu_correlation": round(correlation, 2),
                "rounds_for_5pct": needed,
                "variants": {n: {k: round(v, 3) for k, v in s.items()} for n, s in summary.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
