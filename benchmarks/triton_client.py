"""Our Triton client against perf_analyzer, on the same server: HTTP, echo, 1 and 10 clients.

    flock /tmp/bench.lock .venv/bin/python benchmarks/triton_client.py [--quick] [--repeats N]

One tritonserver (echo "HelloWorld" as UINT8, 1 instance, no batching) serves every client
design in turn, through the harness's own measurement (warm-up, windows, stability rule):

- ``tritonclient``: the official Python library in client threads (what the seed used);
- ``tritonclient x2``: the same, its clients split over 2 client processes;
- ``lean``: engines/triton/http_client.py (same protocol, prepared bytes, one socket);
- ``lean x2``: the same over 2 client processes;
- ``perf_analyzer``: Triton's C++ load generator (engines/triton/perf_analyzer.py).

Designs alternate within each repeat, so drift on this shared machine hits all of them;
figures are medians over the repeats. Client and server CPU per request show where the
time goes (2 cores serve both sides here). The last line is one JSON object:
``ratio_http_c1`` / ``ratio_http_c10`` are the ``triton`` system's default client design
(``lean`` in threads) over perf_analyzer; ``best_*`` is the best design at that point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.triton.system import TritonSystem  # noqa: E402
from engines.workloads import create_workload  # noqa: E402
from harness.aggregate import summarize  # noqa: E402
from harness.measurement import Run  # noqa: E402
from harness.scenario import load_scenario  # noqa: E402
from harness.turn import measure_turn  # noqa: E402

#: design -> (triton options, client processes)
DESIGNS: dict[str, tuple[dict[str, Any], int]] = {
    "tritonclient": ({"client": "tritonclient"}, 1),
    "tritonclient x2": ({"client": "tritonclient"}, 2),
    "lean": ({"client": "lean"}, 1),
    "lean x2": ({"client": "lean"}, 2),
    "perf_analyzer": ({"client": "perf_analyzer"}, 1),
}
DEFAULT_DESIGN = "lean"
CLIENTS = (1, 10)


def scenario_file(folder: Path, quick: bool) -> Path:
    load = {
        "clients": list(CLIENTS),
        "warmup_s": 0.5 if quick else 1.0,
        "duration_s": 1.5 if quick else 3.0,
        "max_windows": 4 if quick else 6,
        "stability_pct": 15,
    }
    document = {
        "name": "triton_client",
        "workload": {"name": "echo", "payload": "HelloWorld"},
        "load": load,
        "systems": ["triton"],
    }
    path = folder / "triton_client.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def variant(base: TritonSystem, options: dict[str, Any], processes: int) -> TritonSystem:
    """Another client design on ``base``'s running server (never started or stopped)."""
    scenario = base.scenario.model_copy(
        update={"load": base.scenario.load.model_copy(update={"client_processes": processes})}
    )
    spec = base.spec.model_copy(update={"options": {**base.spec.options, **options}})
    system = TritonSystem(spec, scenario)
    system._server = base._server
    return system


def measure(repeats: int, quick: bool) -> dict[tuple[str, int], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="pipebench-bench-") as tmp:
        scenario = load_scenario(scenario_file(Path(tmp), quick))
        workload = create_workload("echo", {"payload": "HelloWorld"})
        base = TritonSystem(scenario.systems[0], scenario)
        base.start()
        try:
            base.ready(120)
            systems = {name: variant(base, *design) for name, design in DESIGNS.items()}
            runs: dict[tuple[str, int], list[Run]] = {}
            for repeat in range(repeats):
                for clients in CLIENTS:
                    for name, system in systems.items():
                        run = measure_turn(
                            system,
                            system.load_generator(),
                            workload,
                            system.scenario.load,
                            clients,
                            repeat,
                        )
                        runs.setdefault((name, clients), []).append(run)
                        print(
                            f"  {name} c{clients} repeat {repeat}: {run.qps:,.0f} QPS", flush=True
                        )
            return {
                key: _figures(summarize(systems[key[0]], base.spec, scenario.load, key[1], found))
                for key, found in runs.items()
            }
        finally:
            base.stop()


def _figures(record: Any) -> dict[str, Any]:
    def per_request_us(pct: float | None) -> float | None:
        return pct / 100 / record.qps * 1e6 if pct is not None and record.qps else None

    return {
        "qps": record.qps,
        "qps_repeats": record.qps_repeats,
        "p50_ms": record.latency_ms["p50"],
        "p99_ms": record.latency_ms["p99"],
        "stable": record.stable,
        "client_cpu_us": per_request_us(record.cpu.get("client_pct")),
        "server_cpu_us": per_request_us(record.cpu.get("server_pct")),
    }


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    found = measure(repeats, args.quick)
    print(f"\nTriton HTTP echo, 1 instance; medians of {repeats} repeat(s)\n")
    print("| design | clients | QPS | vs perf_analyzer | TP50 ms | TP99 ms | client CPU µs/req "
          "| server CPU µs/req | stable |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for clients in CLIENTS:
        reference = found[("perf_analyzer", clients)]["qps"]
        for name in DESIGNS:
            row = found[(name, clients)]
            print(
                f"| {name} | {clients} | {row['qps']:,.0f} | {row['qps'] / reference:.2f} "
                f"| {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {_us(row['client_cpu_us'])} "
                f"| {_us(row['server_cpu_us'])} | {row['stable']} |"
            )
    summary: dict[str, Any] = {}
    for clients in CLIENTS:
        reference = found[("perf_analyzer", clients)]["qps"]
        ours = {name: found[(name, clients)]["qps"] for name in DESIGNS if name != "perf_analyzer"}
        best = max(ours, key=ours.__getitem__)
        summary[f"ratio_http_c{clients}"] = round(ours[DEFAULT_DESIGN] / reference, 3)
        summary[f"best_http_c{clients}"] = best
        summary[f"best_ratio_http_c{clients}"] = round(ours[best] / reference, 3)
        summary[f"tritonclient_ratio_http_c{clients}"] = round(ours["tritonclient"] / reference, 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
