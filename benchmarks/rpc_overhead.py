"""What the engine costs behind Thrift: ``pipe+thrift`` against ``thrift``, side by side.

    flock /tmp/bench.lock .venv/bin/python benchmarks/rpc_overhead.py [--quick] [--rounds N]

Both servers are the same Thrift server process (engines/thrift/server.py) with the same
client; ``thrift`` replies without computing, ``pipe+thrift`` passes every request through
the pipe engine (1 instance, no batching: the hello-world serving). For each payload (the
10-byte "HelloWorld" and a 64 KiB echo) both servers stay up while the two are measured in
turn for ``--rounds`` rounds at 1 and at 10 clients, with the harness's own load generator
(client threads of this process, as ``bench run`` drives them: warm-up, windows). The order
alternates, AB BA AB..., so neither side always runs first after a pause. Each round gives
one ratio pipe+thrift / thrift QPS of two turns seconds apart; a figure is the median of
those per-round ratios, so drift on this shared machine cancels, with its distribution-free
95 % interval (order statistics, from 6 rounds: harness.stats.median_interval), printed so
that a ratio is never read closer than it was measured. Beside QPS it prints the server's
CPU time per request (psutil, medians), the figure that says what the engine adds, which
the QPS of a busy machine hides in noise. The last line is one JSON object:
``{"ratio_c1", "ratio_c10", "ratio_64k_c1", "ratio_64k_c10"}`` (the medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from engines.workloads import create_workload  # noqa: E402
from harness.loadgen import ThreadHost, drive, plans  # noqa: E402
from harness.measurement import Timing  # noqa: E402
from harness.scenario import Scenario  # noqa: E402
from harness.stats import median_interval  # noqa: E402
from harness.system import System, create_system  # noqa: E402

SYSTEMS = ("pipe+thrift", "thrift")
CLIENTS = (1, 10)
#: key prefix -> echo options
PAYLOADS: dict[str, dict[str, Any]] = {
    "": {"payload": "HelloWorld"},
    "64k_": {"payload": "HelloWorld", "payload_bytes": 65536},
}
TIMEOUT_S = 30.0


def scenario(echo: dict[str, Any]) -> Scenario:
    """The hello-world serving with this echo payload, both systems."""
    return Scenario.model_validate(
        {
            "name": "rpc_overhead",
            "workload": {"name": "echo", **echo},
            "serving": {"instances": 1, "batching_timeout_ms": 0, "max_batch": 1},
            "load": {"clients": list(CLIENTS), "request_timeout_s": TIMEOUT_S},
            "systems": list(SYSTEMS),
        }
    )


def measure(system: System, request: Any, clients: int, timing: Timing) -> tuple[float, float]:
    """QPS of one repeat (``clients`` closed-loop client threads, the harness's windows) and
    the server's CPU microseconds per request over the whole repeat."""
    (plan,) = plans("closed", clients, 1, TIMEOUT_S)
    host = ThreadHost([system.client() for _ in range(clients)], [request] * clients, plan)
    (server,) = (psutil.Process(pid) for pid in system.server_pids())
    cpu_before = sum(server.cpu_times()[:2])
    try:
        run = drive([host], timing, TIMEOUT_S)
    finally:
        host.close()
    cpu_us = (sum(server.cpu_times()[:2]) - cpu_before) * 1e6 / max(len(run.samples), 1)
    if run.first_error:
        raise RuntimeError(f"{system.spec.column}: {run.first_error}")
    return run.qps, cpu_us


def compare_payload(
    key: str, echo: dict[str, Any], rounds: int, timing: Timing
) -> dict[str, float]:
    """Per client count: the median over rounds of pipe+thrift / thrift QPS."""
    setup = scenario(echo)
    request = create_workload("echo", echo).make_request()
    systems = [create_system(spec, setup) for spec in setup.systems]
    ratios: dict[str, float] = {}
    try:
        for system in systems:
            system.start()
        for system in systems:
            system.ready(60)
        for clients in CLIENTS:
            per_round: list[float] = []
            qps: dict[str, list[float]] = {name: [] for name in SYSTEMS}
            cpu: dict[str, list[float]] = {name: [] for name in SYSTEMS}
            for index in range(rounds):
                for system in systems[:: -1 if index % 2 else 1]:  # AB BA AB ...
                    found, cpu_us = measure(system, request, clients, timing)
                    qps[system.spec.column].append(found)
                    cpu[system.spec.column].append(cpu_us)
                per_round.append(qps["pipe+thrift"][-1] / qps["thrift"][-1])
            ratio, interval = median_interval(per_round)
            ratios[f"ratio_{key}c{clients}"] = round(ratio, 3)
            ci = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "[no interval]"
            size = len(request.tobytes())
            figures = "  ".join(
                f"{n} {statistics.median(qps[n]):6.0f} QPS {statistics.median(cpu[n]):5.1f} us"
                for n in SYSTEMS
            )
            rounds_text = " ".join(f"{r:.2f}" for r in per_round)
            print(
                f"{size:6d} B  c{clients:<3d} {figures}   ratio {ratio:.3f} {ci}"
                f"  (rounds: {rounds_text})",
                flush=True,
            )
    finally:
        for system in systems:
            system.stop()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument(
        "--rounds", type=int, default=12, help="paired rounds (at least 3; 6 for an interval)"
    )
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds: at least 3 (a median of per-round ratios)")
    timing = Timing(
        warmup_s=0.3 if args.quick else 0.5,
        window_s=0.4 if args.quick else 0.6,
        max_windows=3,
        stability_pct=100.0,  # fixed turns: the pairing, not one turn's stability, cancels drift
    )
    ratios: dict[str, float] = {}
    for key, echo in PAYLOADS.items():
        ratios |= compare_payload(key, echo, args.rounds, timing)
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
