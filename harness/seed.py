"""The seed report as data: its tables (keyed by our scenario names) and its conclusions.

The seed (``shared/seed/performance-report.en.md``) was measured on a GPU machine with the
original torchpipe; our numbers come from another machine and engine, so absolute values
are shown side by side but never checked. What is checked are the seed's *conclusions*,
each a statement about shapes and ratios measured in one run (a TP50 against the batching
timeout, one system's QPS against another's), evaluated on our results.

Seed columns map onto our systems by system name and options (not by label), so a scenario
may label its columns freely: the seed's ``torchpipe`` column in the batching table is
``pipe`` with ``policy: torchpipe-v0``, its ``triton-cli`` is ``triton``. A seed column that
two of our systems stand for (our ``pipe`` engine and the real torchpipe core) is listed
once per system, each row with the seed's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness import claims
from harness.report.resultsets import ResultSet, point_text
from harness.results import PointRecord, SystemEntry

Results = dict[str, ResultSet]
Metric = Literal["qps", "p50"]


@dataclass(frozen=True)
class SystemMatch:
    """Which of our systems stands for a seed column: a system name and option values."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    #: Workload parameters the system must override (e.g. ``{"type": "bytes"}``); a system
    #: that overrides any other does not match.
    workload: dict[str, Any] = field(default_factory=dict)

    def matches(self, spec: SystemEntry) -> bool:
        if spec.name != self.name or spec.workload != self.workload:
            return False
        given = spec.options
        return all(
            given.get(k, _default_option(self.name, k)) == v for k, v in self.options.items()
        )

    def describe(self) -> str:
        options = ", ".join(f"{k}: {v}" for k, v in self.options.items())
        return f"{self.name} ({options})" if options else self.name


def _default_option(system: str, option: str) -> Any:
    """The value a system uses when a scenario leaves ``option`` out (from its Options)."""
    from harness.system import system_class

    fields = system_class(system).Options.model_fields
    return fields[option].default if option in fields else None


@dataclass(frozen=True)
class SeedColumn:
    seed: str
    #: clients -> the seed's number (QPS, or TP50 in ms); missing where the seed has "-".
    values: dict[int, float]
    ours: SystemMatch | None


@dataclass(frozen=True)
class SeedTable:
    section: str
    title: str
    #: The scenario that reproduces it: its ``seed_table`` field, or else its name.
    key: str
    settings: str
    metric: Metric
    points: tuple[int, ...]
    columns: tuple[SeedColumn, ...]


def _column(seed: str, ours: SystemMatch | None, **by_clients: float) -> SeedColumn:
    """``c10=233``: the seed's number at 10 clients."""
    return SeedColumn(seed, {int(k[1:]): v for k, v in by_clients.items()}, ours)


PIPE = SystemMatch("pipe")
PIPE_ADAPTIVE = SystemMatch("pipe", {"policy": "adaptive"})
PIPE_TORCHPIPE = SystemMatch("pipe", {"policy": "torchpipe"})
PIPE_V0 = SystemMatch("pipe", {"policy": "torchpipe-v0"})
PIPE_THREADS = SystemMatch("pipe", {"kind": "thread"})
PIPE_PROCESS = SystemMatch("pipe", {"kind": "process"})
PIPE_THRIFT = SystemMatch("pipe+thrift")
PIPE_THRIFT_THREADS = SystemMatch("pipe+thrift", {"kind": "thread"})
PIPE_THRIFT_PROCESS = SystemMatch("pipe+thrift", {"kind": "process"})
#: The seed's resnet rows ran TensorRT on a GPU; these columns do too (skipped without one).
ON_TENSORRT = {"runtime": "tensorrt", "device": "cuda"}
PIPE_TENSORRT = SystemMatch("pipe", workload=ON_TENSORRT)
PIPE_THRIFT_TENSORRT = SystemMatch("pipe+thrift", workload=ON_TENSORRT)
THRIFT = SystemMatch("thrift")
TRITON = SystemMatch("triton")
TRITON_BYTES = SystemMatch("triton", workload={"type": "bytes"})
TRITON_RPC = SystemMatch("triton-rpc")
TORCHPIPE = SystemMatch("torchpipe", {"backend": "python"})
TORCHPIPE_CPP = SystemMatch("torchpipe", {"backend": "Identity"})
TORCHPIPE_THRIFT = SystemMatch("torchpipe+thrift", {"backend": "python"})
TORCHPIPE_THRIFT_CPP = SystemMatch("torchpipe+thrift", {"backend": "Identity"})
TORCHPIPE_THRIFT_DECODE = SystemMatch("torchpipe+thrift", {"backend": "DecodeMat"})

HELLO = "Hello, World!"
TABLES: tuple[SeedTable, ...] = (
    SeedTable(
        HELLO,
        "Idle load",
        "hello_world",
        "clients 1 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (1,),
        (
            _column("torchpipe (python backend)", PIPE, c1=65227),
            _column("torchpipe (python backend)", TORCHPIPE, c1=65227),
            _column("torchpipe (c++ backend)", TORCHPIPE_CPP, c1=70671),
            _column("torchpipe+thrift (python backend)", PIPE_THRIFT, c1=10020),
            _column("torchpipe+thrift (python backend)", TORCHPIPE_THRIFT, c1=10020),
            _column("torchpipe+thrift (c++ backend)", TORCHPIPE_THRIFT_CPP, c1=10444),
            _column("thrift", THRIFT, c1=14890),
            _column("triton-cli", TRITON, c1=7342),
        ),
    ),
    SeedTable(
        HELLO,
        "Multi-client pressure",
        "hello_world",
        "clients 10 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (10,),
        (
            _column("torchpipe (python backend)", PIPE, c10=46655),
            _column("torchpipe (python backend)", TORCHPIPE, c10=46655),
            _column("torchpipe (c++ backend)", TORCHPIPE_CPP, c10=55949),
            _column("torchpipe-thrift (python backend)", PIPE_THRIFT, c10=13221),
            _column("torchpipe-thrift (python backend)", TORCHPIPE_THRIFT, c10=13221),
            _column("torchpipe-thrift (c++ backend)", TORCHPIPE_THRIFT_CPP, c10=14977),
            _column("thrift", THRIFT, c10=17262),
            _column("triton-cli", TRITON, c10=15039),
        ),
    ),
    SeedTable(
        HELLO,
        "The same string as BYTES (the seed: Triton handles TYPE_STRING poorly; no numbers)",
        "hello-world-string",
        "clients 1 and 10 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (1, 10),
        (
            _column("torchpipe", PIPE),
            _column("torchpipe", TORCHPIPE),
            _column("torchpipe+thrift", PIPE_THRIFT),
            _column("torchpipe+thrift", TORCHPIPE_THRIFT),
            _column("thrift", THRIFT),
            _column("triton-cli", TRITON),
        ),
    ),
    SeedTable(
        "Batching adapts to the number of clients",
        "TP50 (ms)",
        "adaptive-batching",
        "instances 1 / timeout 10 ms / max_batch 4, python backends",
        "p50",
        (1, 2, 4, 10),
        (
            _column("torchpipe", PIPE_V0, c1=0.25, c2=10.25, c4=0.34, c10=0.82),
            _column("torchpipe", TORCHPIPE, c1=0.25, c2=10.25, c4=0.34, c10=0.82),
            _column("triton", TRITON, c1=10.5, c2=10.57, c4=0.5, c10=0.97),
        ),
    ),
    SeedTable(
        "Batching efficiency at max_batch = 1",
        "TP50 (ms)",
        "max-batch-1",
        "instances 1 / timeout 10 ms / max_batch 1",
        "p50",
        (1, 10),
        (
            _column("torchpipe", PIPE, c1=0.09, c10=0.64),
            _column("torchpipe", TORCHPIPE, c1=0.09, c10=0.64),
            _column("triton", TRITON, c1=0.23, c10=1.26),
        ),
    ),
    SeedTable(
        "Python (CPU) backend concurrency and the GIL",
        "Pure-Python sum of 1..100000",
        "gil-sum",
        "clients 10 / instances 10 / timeout 0 / max_batch 1",
        "qps",
        (10,),
        (
            _column("torchpipe (python backend, threads)", PIPE_THREADS, c10=233),
            _column("torchpipe (python backend, threads)", TORCHPIPE, c10=233),
            _column("triton", TRITON, c10=814),
            _column("torchpipe-multiprocess", PIPE_PROCESS, c10=872),
        ),
    ),
    SeedTable(
        "Pure CPU backend: JPEG decode",
        "1 client",
        "jpeg-decode-1",
        "clients 1 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (1,),
        (
            _column("torchpipe-thrift (c++ backend)", TORCHPIPE_THRIFT_DECODE, c1=426),
            _column("torchpipe-thrift (python backend)", PIPE_THRIFT_THREADS, c1=406),
            _column("torchpipe-thrift-multiprocess", PIPE_THRIFT_PROCESS),
            _column("triton-cli", TRITON, c1=339),
        ),
    ),
    SeedTable(
        "Pure CPU backend: JPEG decode",
        "10 clients",
        "jpeg-decode-10",
        "clients 10 / instances 10 / timeout 0 / max_batch 1",
        "qps",
        (10,),
        (
            _column("torchpipe-thrift (c++ backend)", TORCHPIPE_THRIFT_DECODE, c10=1599),
            _column("torchpipe-thrift (python backend)", PIPE_THRIFT_THREADS, c10=1334),
            _column("torchpipe-thrift-multiprocess", PIPE_THRIFT_PROCESS),
            _column("triton-cli", TRITON, c10=1440),
        ),
    ),
    SeedTable(
        "resnet50",
        "1 client",
        "resnet50-1",
        "clients 1 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (1,),
        (
            _column("torchpipe-thrift-rpc", THRIFT, c1=7519),
            _column("triton-rpc", TRITON_RPC, c1=1819),
            _column("torchpipe-thrift", PIPE_THRIFT, c1=381),
            _column("torchpipe-thrift", PIPE_THRIFT_TENSORRT, c1=381),
            _column("triton-cli", TRITON, c1=358),
        ),
    ),
    SeedTable(
        "resnet50",
        "10 clients",
        "resnet50-10",
        "clients 10 / instances 10 / timeout 0 / max_batch 1",
        "qps",
        (10,),
        (
            _column("torchpipe-thrift-rpc", THRIFT, c10=11938),
            _column("triton-rpc", TRITON_RPC, c10=3355),
            _column("torchpipe-thrift", PIPE_THRIFT, c10=720),
            _column("torchpipe-thrift", PIPE_THRIFT_TENSORRT, c10=720),
            _column("triton-cli", TRITON, c10=722),
        ),
    ),
    SeedTable(
        "resnet50",
        "Batching",
        "resnet50-batching",
        "clients 10 / instances 2 / timeout 5 ms / max_batch 4",
        "qps",
        (10,),
        (
            _column("torchpipe-thrift", PIPE_THRIFT, c10=907),
            _column("torchpipe-thrift", PIPE_THRIFT_TENSORRT, c10=907),
            _column("triton-cli", TRITON, c10=898),
        ),
    ),
    SeedTable(
        "Real-world use: local call vs chained RPC",
        "1 client",
        "resnet18-local",
        "clients 1 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (1,),
        (
            _column("torchpipe", PIPE, c1=559),
            _column("torchpipe", PIPE_TENSORRT, c1=559),
            # The seed's "triton-rpc" here is Triton computing resnet18 behind its RPC.
            _column("triton-rpc", TRITON, c1=462),
        ),
    ),
    SeedTable(
        "Real-world use: local call vs chained RPC",
        "10 clients",
        "resnet18-local",
        "clients 10 / instances 1 / timeout 0 / max_batch 1",
        "qps",
        (10,),
        (
            _column("torchpipe", PIPE, c10=1303),
            _column("torchpipe", PIPE_TENSORRT, c10=1303),
            _column("triton-rpc", TRITON, c10=907),
        ),
    ),
)


# -- reading our results ---------------------------------------------------------------------


def scenario_for(results: Results, key: str) -> ResultSet | None:
    """The run reproducing seed table ``key``: by its ``seed_table`` field, else by name."""
    for result in results.values():
        if result.scenario.seed_table == key:
            return result
    return results.get(key)


def find_label(result: ResultSet, match: SystemMatch) -> str | None:
    """Our column standing for ``match`` in this run (the first matching system)."""
    for spec in result.scenario.systems:
        if match.matches(spec):
            return spec.column
    return None


def find_record(result: ResultSet, label: str, clients: int) -> PointRecord | None:
    for record in result.records:
        if record.label == label and record.clients == clients and record.measured:
            return record
    return None


def metric_of(record: PointRecord, metric: Metric) -> float | None:
    return record.qps if metric == "qps" else record.latency_ms.get("p50")


def timeout_ms(result: ResultSet) -> float:
    return float(result.scenario.serving.get("batching_timeout_ms") or 0.0)


# -- the conclusions -------------------------------------------------------------------------
#
# Each conclusion is a claim about an interval (harness.claims): it holds when the whole 95 %
# interval is on the claimed side of its margin, fails when it is wholly on the other side,
# and is inconclusive otherwise. Ratios of two systems of one scenario are paired by round.

Status = Literal["holds", "fails", "inconclusive", "not measured"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    evidence: str


@dataclass(frozen=True)
class Conclusion:
    section: str
    statement: str
    check: Callable[[Results], Outcome]


NOT_MEASURED = Outcome("not measured", "")
ADAPTIVE = "adaptive-batching"


def rounds_of(record: PointRecord, metric: Metric) -> list[float]:
    """The metric in each round of a point (older files: their single summary value)."""
    if metric == "qps":
        return list(record.qps_repeats) or [record.qps]
    found = [repeat.p50_ms for repeat in record.per_repeat]
    return found or [record.latency_ms.get("p50", float("nan"))]


@dataclass(frozen=True)
class Where:
    """One of our systems in the run reproducing one seed table."""

    key: str
    match: SystemMatch

    def rounds(
        self, results: Results, metric: Metric, clients: tuple[int, ...]
    ) -> tuple[str, dict[int, list[float]]] | None:
        """Our label and its metric's rounds at every one of ``clients``; None if any is
        missing."""
        result = scenario_for(results, self.key)
        label = find_label(result, self.match) if result else None
        if result is None or label is None:
            return None
        found: dict[int, list[float]] = {}
        for n in clients:
            record = find_record(result, label, n)
            if record is None:
                return None
            found[n] = rounds_of(record, metric)
        return label, found


def _outcome(verdict: claims.Verdict, evidence: str, decisive: claims.Estimate) -> Outcome:
    if verdict == "inconclusive":
        evidence += f" ({claims.tie_text(decisive)})"
    return Outcome(verdict, evidence)


def _tp50(results: Results, match: SystemMatch, clients: tuple[int, ...]):
    found = Where(ADAPTIVE, match).rounds(results, "p50", clients)
    if found is None:
        return None
    label, rounds = found
    return label, {n: claims.estimate(values) for n, values in rounds.items()}


def _adaptive_does_not_wait(results: Results) -> Outcome:
    """Every adaptive engine in the batching run answers one client far under the timeout."""
    result = scenario_for(results, ADAPTIVE)
    timeout = timeout_ms(result) if result else 0.0
    checked = []
    for match in (PIPE_ADAPTIVE, PIPE_TORCHPIPE, PIPE_V0, TORCHPIPE):
        found = _tp50(results, match, (1,))
        if found:
            checked.append((found[0], found[1][1]))
    if not checked or timeout <= 0:
        return NOT_MEASURED
    verdicts = [claims.below(p50, timeout / 10) for _, p50 in checked]
    verdict = claims.combine(verdicts)
    evidence = ", ".join(f"{label} {p50.text()} ms" for label, p50 in checked)
    worst = max((p50 for _, p50 in checked), key=lambda e: e.bounds[1])
    return _outcome(verdict, f"1-client TP50: {evidence}; timeout {timeout:g} ms", worst)


def _near_timeout(p50: claims.Estimate, timeout: float) -> claims.Verdict:
    return claims.between(p50, 0.9 * timeout, 1.5 * timeout)


def _triton_waits(results: Results) -> Outcome:
    found = _tp50(results, TRITON, (1,))
    result = scenario_for(results, ADAPTIVE)
    if not found or result is None:
        return NOT_MEASURED
    timeout = timeout_ms(result)
    label, p50 = found[0], found[1][1]
    evidence = f"{label} 1-client TP50 {p50.text()} ms; timeout {timeout:g} ms"
    return _outcome(_near_timeout(p50, timeout), evidence, p50)


def _v0_two_client_wait(results: Results) -> Outcome:
    found = _tp50(results, PIPE_V0, (1, 2))
    result = scenario_for(results, ADAPTIVE)
    if not found or result is None:
        return NOT_MEASURED
    timeout = timeout_ms(result)
    label, p50 = found
    verdict = claims.combine([claims.below(p50[1], timeout / 10), _near_timeout(p50[2], timeout)])
    evidence = (
        f"{label} TP50 {p50[1].text()} ms at 1 client, {p50[2].text()} ms at 2; "
        f"timeout {timeout:g} ms"
    )
    return _outcome(verdict, evidence, p50[2])


#: "A beats B" needs a margin: 5 %, judged on the interval of the paired ratio.
BEATS = 1.05


def _faster(
    fast: Where, slow: Where, clients: tuple[int, ...], factor: float
) -> Callable[[Results], Outcome]:
    """``fast`` reaches more than ``factor`` x the QPS of ``slow`` at every point."""

    def check(results: Results) -> Outcome:
        ours = fast.rounds(results, "qps", clients)
        theirs = slow.rounds(results, "qps", clients)
        if not ours or not theirs:
            return NOT_MEASURED
        (a, qa), (b, qb) = ours, theirs
        paired = fast.key == slow.key
        if not paired:  # two runs: say which is which
            a, b = f"{fast.key} {a}", f"{slow.key} {b}"
        ratios = {n: claims.ratio(qa[n], qb[n], paired) for n in clients}
        evidence = "; ".join(
            f"{point_text(('clients', n))}: {a} / {b} = {ratios[n].text()}"
            + ("" if paired else " (unpaired)")
            for n in clients
        )
        verdict = claims.combine([claims.above(r, factor) for r in ratios.values()])
        decisive = min(ratios.values(), key=lambda r: r.bounds[0])
        return _outcome(verdict, evidence + f"; margin {factor:g}x", decisive)

    return check


def _all_of(*checks: Callable[[Results], Outcome]) -> Callable[[Results], Outcome]:
    """Holds when every measured part holds; fails when one fails; not measured when no
    part is."""

    def check(results: Results) -> Outcome:
        outcomes = [c(results) for c in checks]
        done = [o for o in outcomes if o.status != "not measured"]
        if not done:
            return NOT_MEASURED
        missing = len(outcomes) - len(done)
        evidence = "; ".join(o.evidence for o in done)
        if missing:
            evidence += f" ({missing} part{'s' * (missing > 1)} not measured)"
        verdicts: list[claims.Verdict] = [o.status for o in done]  # type: ignore[misc]
        return Outcome(claims.combine(verdicts), evidence)

    return check


#: "≫" for RPC vs compute: the seed's own smallest pure-RPC / compute ratio is 4.6x.
RPC_FACTOR = 4.0

CONCLUSIONS: tuple[Conclusion, ...] = (
    Conclusion(
        HELLO,
        "Triton handles strings poorly: the same HelloWorld is slower as BYTES than as UINT8.",
        _faster(Where("hello_world", TRITON), Where("hello_world", TRITON_BYTES), (1, 10), BEATS),
    ),
    Conclusion(
        "Batching adapts to the number of clients",
        "With 1 client, adaptive batching does not wait: TP50 ≪ timeout (under a tenth).",
        _adaptive_does_not_wait,
    ),
    Conclusion(
        "Batching adapts to the number of clients",
        "With 1 client, Triton's dynamic batcher waits: TP50 ≈ timeout (0.9x to 1.5x).",
        _triton_waits,
    ),
    Conclusion(
        "Batching adapts to the number of clients",
        "pipe with policy torchpipe-v0 reproduces the seed's 2-client wait: "
        "TP50 ≪ timeout at 1 client, ≈ timeout at 2.",
        _v0_two_client_wait,
    ),
    Conclusion(
        "Python (CPU) backend concurrency and the GIL",
        "On GIL-bound Python work the process backend beats threads (by more than 1.2x).",
        _faster(Where("gil-sum", PIPE_PROCESS), Where("gil-sum", PIPE_THREADS), (10,), 1.2),
    ),
    Conclusion(
        "resnet50",
        f"Pure RPC ≫ compute for resnet50: each RPC-only server reaches over {RPC_FACTOR:g}x "
        "the QPS of the same stack computing.",
        _all_of(
            *(
                _faster(Where(key, rpc), Where(key, compute), (n,), RPC_FACTOR)
                for key, n in (("resnet50-1", 1), ("resnet50-10", 10))
                for rpc, compute in ((THRIFT, PIPE_THRIFT), (TRITON_RPC, TRITON))
            )
        ),
    ),
    Conclusion(
        "Real-world use: local call vs chained RPC",
        "For resnet18 the local call beats Triton behind its RPC, at 1 and at 10 clients.",
        _faster(Where("resnet18-local", PIPE), Where("resnet18-local", TRITON), (1, 10), BEATS),
    ),
)
