"""pipe vs the real torchpipe core (omniback), side by side, in one run.

    flock /tmp/bench.lock .venv/bin/python benchmarks/engine.py [--quick] [--repeats N]

Every measurement runs in a fresh subprocess (so one engine's threads never run during
the other's window), the engines alternate within each repeat, and the figures are
medians over the repeats. The last line printed is one JSON object with the issue's keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

ECHO = {"work": "echo", "instances": 1, "timeout": 0, "max": 1}
BATCHING = {"work": "echo", "instances": 1, "timeout": 10, "max": 4}
FIXED = {"work": "sleep_fixed", "instances": 1, "timeout": 10, "max": 4, "clients": 4}
GIL = {"work": "sum", "instances": 10, "timeout": 0, "max": 1, "clients": 10, "engine": "pipe"}


def cases() -> dict[str, dict[str, Any]]:
    """name -> case; engine ``both`` means pipe and omniback are both measured."""
    table: dict[str, dict[str, Any]] = {
        "echo_c1": {**ECHO, "clients": 1, "engine": "both"},
        "echo_c10": {**ECHO, "clients": 10, "engine": "both"},
        "v0_c2": {**BATCHING, "clients": 2, "engine": "pipe", "policy": "torchpipe-v0"},
        "sleep_c4": {**FIXED, "engine": "both"},
        "item_i1": {**FIXED, "work": "sleep_item", "engine": "pipe"},
        "item_i2": {**FIXED, "work": "sleep_item", "instances": 2, "engine": "pipe"},
        "fifo_c10": {**FIXED, "timeout": 0, "clients": 10, "engine": "pipe"},
        "gil_threads": {**GIL, "kind": "thread"},
        "gil_process": {**GIL, "kind": "process"},
    }
    for clients in (1, 2, 4, 10):
        table[f"adaptive_c{clients}"] = {**BATCHING, "clients": clients, "engine": "both"}
    return table


def run_one(case: dict[str, Any]) -> dict[str, float]:
    code = (
        "import json, sys; from benchmarks.engine_cases import measure; "
        "print(json.dumps(measure(json.loads(sys.argv[1]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(case)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"measurement {case} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, short windows (< 60 s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    seconds, warmup = (0.6, 0.2) if args.quick else (3.0, 1.0)
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for repeat in range(repeats):
        for name, case in cases().items():
            engines = ["pipe", "omniback"] if case["engine"] == "both" else [case["engine"]]
            if repeat % 2:
                engines.reverse()  # alternate who goes first
            for engine in engines:
                run = {**case, "engine": engine, "seconds": seconds, "warmup": warmup}
                samples.setdefault((name, engine), []).append(run_one(run))
            print(f"repeat {repeat + 1}/{repeats}: {name} done", file=sys.stderr, flush=True)

    def med(name: str, engine: str, key: str) -> float:
        return statistics.median(sample[key] for sample in samples[(name, engine)])

    print("| case | engine | QPS | TP50 ms | TP99 ms | CPU µs/request |")
    print("|---|---|---:|---:|---:|---:|")
    for name, engine in samples:
        qps, p50, p99 = (med(name, engine, key) for key in ("qps", "p50", "p99"))
        cpu_us = 1e6 * med(name, engine, "cpu_per_request")
        print(f"| {name} | {engine} | {qps:.0f} | {p50:.3f} | {p99:.3f} | {cpu_us:.1f} |")
    clients = ("1", "2", "4", "10")
    summary = {
        "echo_qps_ratio_c1": med("echo_c1", "pipe", "qps") / med("echo_c1", "omniback", "qps"),
        "echo_qps_ratio_c10": med("echo_c10", "pipe", "qps") / med("echo_c10", "omniback", "qps"),
        "adaptive_tp50_ms": {c: med(f"adaptive_c{c}", "pipe", "p50") for c in clients},
        "adaptive_tp50_ms_ref": {c: med(f"adaptive_c{c}", "omniback", "p50") for c in clients},
        "v0_tp50_ms_c2": med("v0_c2", "pipe", "p50"),
        "sleep_c4_qps_ratio": med("sleep_c4", "pipe", "qps") / med("sleep_c4", "omniback", "qps"),
        "cpu_per_request_ratio": med("sleep_c4", "pipe", "cpu_per_request")
        / med("sleep_c4", "omniback", "cpu_per_request"),
        "two_instance_gain": med("item_i2", "pipe", "qps") / med("item_i1", "pipe", "qps"),
        "fifo_tp99_over_tp50": med("fifo_c10", "pipe", "p99") / med("fifo_c10", "pipe", "p50"),
        "gil_process_over_threads": med("gil_process", "pipe", "qps")
        / med("gil_threads", "pipe", "qps"),
    }
    print(json.dumps({k: _rounded(v) for k, v in summary.items()}))


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: round(v, 4) for k, v in value.items()}
    return round(value, 4)


if __name__ == "__main__":
    main()
