"""QPS with load nodes on a local Ray cluster vs threads here, side by side; what one
coordinator pays per node (the README's "scale on paper").

    flock /tmp/bench.lock python benchmarks/cluster_overhead.py [PAIRS]

Runs ``bench run scenarios/hello_world.yaml --quick --systems thrift,triton`` three ways,
in turn, PAIRS times (default 2): plain (clients are threads of the harness), with
``--set load.client_processes=2`` (the clients in two client processes: as many processes
as ``--cluster local:2`` has load actors) and with ``--cluster local:2``; and prints each
record's QPS all three ways, the done-when ratio ``cluster / threads`` and the ratio that
isolates what Ray costs, ``cluster / processes`` (a load actor is a client process placed
by Ray, its samples shipped through Ray's object store). Then, on one local cluster: how
long a cluster takes to start, a load actor to become ready, a clock offset to be
measured, and what merging one node's window of samples costs the coordinator. Last
line: one JSON object.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = [sys.executable, "-m", "harness.cli", "run", "scenarios/hello_world.yaml", "--quick"]
RUN += ["--systems", "thrift,triton"]
# Every arm unpinned: a local cluster's actors are placed by the OS, so the threads arm is
# too (harness.affinity's default would share one CPU and take the same-CPU fast path).
RUN += ["--set", "load.affinity=none"]


def _qps(extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [*RUN, *extra, "--results-dir", folder], cwd=ROOT, check=True, capture_output=True
        )
        result = json.loads(next(Path(folder).glob("*.json")).read_text())
    return {f"{r['label']}@{r['clients']}": r["qps"] for r in result["records"]}


def _per_node_costs() -> dict[str, float]:
    from harness.distributed.cluster import open_cluster
    from harness.loadgen import plans
    from harness.measurement import Samples

    began = time.perf_counter()
    with open_cluster("local:2") as session:
        started = time.perf_counter() - began
        from engines.null import NullClient

        factory = lambda: NullClient("echo", {"payload": "HelloWorld"})  # noqa: E731
        request = np.frombuffer(b"HelloWorld", np.uint8)
        ready = []
        for _ in range(3):
            t = time.perf_counter()
            hosts = session.hosts(factory, [request] * 2, plans("closed", 2, 2, 5.0))
            ready.append((time.perf_counter() - t) / len(hosts))
            uncertainty = max(h.offset.uncertainty_ns for h in hosts)
            for host in hosts:
                host.close()
    # One node's window: 100k samples (e.g. 10k QPS for 10 s); the merge is a concatenation.
    parts = [
        Samples(np.arange(100_000), np.ones(100_000, np.int64), np.zeros(100_000, np.int8))
        for _ in range(100)
    ]
    t = time.perf_counter()
    Samples.concat(parts)
    merge = (time.perf_counter() - t) / 100
    return {
        "cluster_start_s": round(started, 2),
        "actor_ready_s": round(statistics.median(ready), 3),
        "offset_uncertainty_us": round(uncertainty / 1e3, 1),
        "merge_100k_samples_ms": round(merge * 1e3, 3),
    }


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    arms = {
        "threads": [],
        "processes": ["--set", "load.client_processes=2"],
        "cluster": ["--cluster", "local:2"],
    }
    found: dict[str, dict[str, list[float]]] = {arm: {} for arm in arms}
    for _ in range(pairs):
        for arm, extra in arms.items():
            for key, value in _qps(extra).items():
                found[arm].setdefault(key, []).append(value)
    summary = {}
    for key in found["threads"]:
        threads, processes, cluster = (statistics.median(found[arm][key]) for arm in arms)
        summary[key] = {
            "threads": round(threads),
            "processes": round(processes),
            "cluster": round(cluster),
            "cluster_vs_threads": round(cluster / threads, 3),
            "cluster_vs_processes": round(cluster / processes, 3),
        }
        print(
            f"{key:<16} threads {threads:7.0f}  processes {processes:7.0f}  cluster "
            f"{cluster:7.0f}  cluster/threads {cluster / threads:.3f}  "
            f"cluster/processes {cluster / processes:.3f}"
        )
    costs = _per_node_costs()
    print(json.dumps({"pairs": pairs, "qps": summary, **costs}))


if __name__ == "__main__":
    main()
