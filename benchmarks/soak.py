"""Soak: every hello-world system under 10 clients for 60 s loses no request and no memory.

    flock /tmp/bench.lock .venv/bin/python benchmarks/soak.py [--seconds 60] [--clients 10]

Per system: start it, check its reply, warm it up (``--warmup`` s under the same load),
read the server's RSS, drive it for ``--seconds``, read the RSS again. Two checks:

- accounting: every call the clients made is one sample (``calls == samples``), and in the
  measured window ``sent == ok + errors + timeouts``;
- memory: server RSS grows by less than ``--max-growth`` % between the two readings.

"Server" is the server process with all its children (Triton's stubs included); for the
in-process ``pipe`` system it is the harness's own process. That process also holds the
load generator's samples (17 bytes a request: ~300 MB a minute at 300k QPS), so it is read
after they are released, and the script runs itself with glibc's mmap threshold fixed
(``MALLOC_MMAP_THRESHOLD_``): otherwise glibc raises the threshold after the first big free
and keeps later big buffers in its heap, and RSS tracks the largest run, not live memory.
The servers it starts keep the default allocator.
Prints a table, then one JSON line; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from engines.workloads import create_workload
from harness.equivalence import check_equivalent
from harness.measurement import ERROR, OK, TIMEOUT
from harness.rounds import READY_TIMEOUT_S
from harness.scenario import Load, Scenario, SystemSpec, load_scenario
from harness.system import System, create_system
from harness.turn import measure_turn

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"


@dataclass
class SoakResult:
    system: str
    seconds: float
    calls: int
    samples: int
    sent: int
    ok: int
    errors: int
    timeouts: int
    qps: float
    rss_after_warmup_mib: float
    rss_end_mib: float
    rss_growth_pct: float
    rss_of: str
    passed: bool


def server_rss(system: System) -> tuple[int, str]:
    """Resident bytes of the server and its children, and which processes those are."""
    pids = system.server_pids()
    if not pids:
        # The load generator's freed sample arrays stay in glibc's per-thread arenas until
        # trimmed: without this the engine would be charged for the harness's bookkeeping.
        gc.collect()
        ctypes.CDLL(None).malloc_trim(0)
        return psutil.Process(os.getpid()).memory_info().rss, "harness process (in-process)"
    total, count = 0, 0
    for pid in pids:
        server = psutil.Process(pid)
        for process in [server, *server.children(recursive=True)]:
            total += process.memory_info().rss
            count += 1
    return total, f"{count} server process{'es' if count > 1 else ''}"


def soak_one(
    scenario: Scenario, spec: SystemSpec, load: Load, warmup_s: float, max_growth: float
) -> SoakResult:
    workload = create_workload(scenario.workload.name, scenario.workload.options)
    clients = load.clients[0] if load.clients else 1
    with create_system(spec, scenario) as system:
        system.start()
        system.ready(READY_TIMEOUT_S)
        check_equivalent(system, spec, workload)
        warm = load.model_copy(update={"warmup_s": 0.0, "duration_s": warmup_s})
        measure_turn(system, None, workload, warm, clients, seed=0)
        rss_start, rss_of = server_rss(system)
        run = measure_turn(system, None, workload, load, clients, seed=1)
        measured = run.measured()
        counts = {code: measured.count(code) for code in (OK, ERROR, TIMEOUT)}
        calls, samples, sent, qps = run.calls, len(run.samples), len(measured), run.qps
        seconds = run.measured_s
        del run, measured  # the samples live in this process: release them before reading
        rss_end, _ = server_rss(system)
    growth = 100 * (rss_end - rss_start) / rss_start
    lossless = calls == samples and sent == counts[OK] + counts[ERROR] + counts[TIMEOUT]
    return SoakResult(
        system=spec.column,
        seconds=round(seconds, 1),
        calls=calls,
        samples=samples,
        sent=sent,
        ok=counts[OK],
        errors=counts[ERROR],
        timeouts=counts[TIMEOUT],
        qps=round(qps),
        rss_after_warmup_mib=round(rss_start / MIB, 1),
        rss_end_mib=round(rss_end / MIB, 1),
        rss_growth_pct=round(growth, 2),
        rss_of=rss_of,
        passed=lossless and growth < max_growth,
    )


def table(results: list[SoakResult]) -> str:
    rows = [
        "| system | s | calls | samples | sent | ok | errors | timeouts | QPS "
        "| RSS warm MiB | RSS end MiB | growth | RSS of | pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.system} | {r.seconds:g} | {r.calls} | {r.samples} | {r.sent} | {r.ok} "
            f"| {r.errors} | {r.timeouts} | {r.qps} | {r.rss_after_warmup_mib} "
            f"| {r.rss_end_mib} | {r.rss_growth_pct:+.2f} % | {r.rss_of} "
            f"| {'yes' if r.passed else 'NO'} |"
        )
    return "\n".join(rows)


def fix_mmap_threshold() -> None:
    """Re-run this script with a fixed glibc mmap threshold (read once, at process start)."""
    if MMAP_THRESHOLD_ENV not in os.environ:
        env = {**os.environ, MMAP_THRESHOLD_ENV: str(128 * 1024)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    del os.environ[MMAP_THRESHOLD_ENV]  # the servers started from here allocate as usual


def main() -> None:
    fix_mmap_threshold()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios/hello_world.yaml")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--max-growth", type=float, default=10.0, help="percent")
    parser.add_argument("--systems", help="comma-separated labels (default: all)")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    # One window pass: 3 windows of a third each, no early stop, no warm-up of its own.
    load = scenario.load.model_copy(
        update={
            "clients": [args.clients],
            "warmup_s": 0.0,
            "duration_s": args.seconds,
            "max_windows": 3,
            "repeats": 1,
        }
    )
    wanted = set(args.systems.split(",")) if args.systems else None
    results = []
    for spec in scenario.systems:
        if wanted is None or spec.column in wanted:
            print(f"soaking {spec.column} ...", file=sys.stderr, flush=True)
            results.append(soak_one(scenario, spec, load, args.warmup, args.max_growth))
    print(table(results))
    summary = {
        "soak": {r.system: asdict(r) for r in results},
        "clients": args.clients,
        "seconds": args.seconds,
        "max_growth_pct": args.max_growth,
        "passed": all(r.passed for r in results),
    }
    print(json.dumps(summary))
    sys.exit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()
