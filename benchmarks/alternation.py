"""How close in time must two sides of a comparison run? Their ratio's spread, measured.

    flock /tmp/bench.lock python benchmarks/alternation.py [--slice-s 0.1] [--pairs 8]

Two systems of ``scenarios/hello_world.yaml`` (default thrift and pipe+thrift) are started
on one shared CPU (``affinity: shared``) and driven by one client, in ``--rounds`` rounds
of equal length two ways: alternating every ``--slice-s`` seconds (``--pairs`` slices
each, in alternating order) and in one turn each of the same total length (like the
harness's paired rounds today). The host's own speed flips every 1-3 s (README, "What a
small shared VM allows"); the closer in time the two sides, the more of it cancels in
their ratio. Prints each way's QPS spread and ratio spread across rounds; last line one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.affinity import plan
from harness.rounds import Contender
from harness.scenario import load_scenario
from harness.system import Client

ROOT = Path(__file__).resolve().parents[1]


def _cv(values: list[float]) -> float:
    return 100 * statistics.stdev(values) / statistics.fmean(values)


def _slice(client: Client, request: object, seconds: float) -> tuple[int, float]:
    """Calls one after another for ``seconds``: (calls, seconds taken)."""
    calls, began = 0, time.perf_counter()
    end = began + seconds
    while True:
        client.call(request)
        calls += 1
        now = time.perf_counter()
        if now >= end:
            return calls, now - began


def _round(clients: list[Client], request: object, slice_s: float, pairs: int) -> list[float]:
    """One round: ``pairs`` slices per system, alternating (A B, B A, ...); QPS each."""
    calls, seconds = [0, 0], [0.0, 0.0]
    for pair in range(pairs):
        for side in (0, 1) if pair % 2 == 0 else (1, 0):
            done, took = _slice(clients[side], request, slice_s)
            calls[side] += done
            seconds[side] += took
    return [calls[side] / seconds[side] for side in (0, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="thrift,pipe+thrift", help="baseline,other")
    parser.add_argument("--slice-s", type=float, default=0.1)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    scenario = load_scenario(ROOT / "scenarios" / "hello_world.yaml")
    labels = args.systems.split(",")
    specs = [next(s for s in scenario.systems if s.column == label) for label in labels]
    placement = plan("shared")
    ways = {"alternating": (args.slice_s, args.pairs), "turns": (args.slice_s * args.pairs, 1)}
    found: dict[str, list[list[float]]] = {way: [] for way in ways}
    with placement.applied():
        contenders = [Contender.create(scenario, spec, placement) for spec in specs]
        clients: list[Client] = []
        try:
            for contender in contenders:
                contender.start(first=True)
            clients = [c.system.client() for c in contenders]
            request = contenders[0].workload.requests()[0]
            for _ in range(args.rounds):
                for way, (slice_s, pairs) in ways.items():
                    found[way].append(_round(clients, request, slice_s, pairs))
        finally:
            for client in clients:
                client.close()
            for contender in contenders:
                if contender.running:
                    contender.stop()
    summary = {}
    for way, rounds in found.items():
        ratios = [other / base for base, other in rounds]
        summary[way] = {
            "cv_qps": round(_cv([base for base, _ in rounds]), 1),
            "cv_ratio": round(_cv(ratios), 1),
            "ratio": round(statistics.median(ratios), 3),
        }
        print(
            f"{way:12} {labels[1]}/{labels[0]} = {summary[way]['ratio']:.3f}: ratio spread "
            f"{summary[way]['cv_ratio']:.1f} % across rounds, {labels[0]}'s QPS "
            f"{summary[way]['cv_qps']:.1f} %"
        )
    print(json.dumps({"slice_s": args.slice_s, "pairs": args.pairs, **summary}))


if __name__ == "__main__":
    main()
