"""Whole runs elsewhere: ``bench run --cluster ADDRESS --resources GPU=1 SCENARIO``.

The scenario runs as one Ray task on a node that offers the resources (e.g. the GPU node):
there the systems are started, measured with clients on that node, as in a plain run, and
stopped; the result comes back through Ray and is written here. What the run prints there
reaches this terminal through Ray's worker log forwarding.

If this side is interrupted, the task is cancelled (its process killed): each server's
watchdog (:mod:`harness.process`) then stops the servers it started on that node.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.distributed.cluster import ClusterSpec, Session, open_cluster, parse_resources
from harness.errors import BenchError, InputError
from harness.results import RunResult
from harness.runner import Progress, RunOptions, run_scenario
from harness.scenario import Scenario
from harness.storage import ResultStore


class _Printed(Progress):
    """Messages printed on the node (forwarded to the driver's terminal by Ray)."""

    def message(self, text: str) -> None:
        print(text, flush=True)


def _run_there(scenario: Scenario, scenario_file: str, options: RunOptions) -> RunResult:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pipebench-remote-") as folder:
        store = ResultStore(Path(folder), scenario.name)
        result = run_scenario(scenario, Path(scenario_file), store, options, _Printed())
    import ray

    context = ray.get_runtime_context()
    result.environment.cluster_node = {
        "node_id": context.get_node_id(),
        "address": ray.util.get_node_ip_address(),
        "resources": context.get_assigned_resources(),
    }
    return result


def run_on_node(
    session: Session,
    resources: dict[str, float],
    scenario: Scenario,
    scenario_file: Path,
    store: ResultStore,
    options: RunOptions,
) -> RunResult:
    """Run ``scenario`` on a node offering ``resources``; the result is written here."""
    ray = session.ray
    if not session.offering(resources):
        wanted = ",".join(f"{k}={v:g}" for k, v in resources.items())
        raise InputError(f"--resources {wanted}: no alive node of the cluster offers them")
    gpus = resources.get("GPU", 0)
    custom = {k: v for k, v in resources.items() if k not in ("GPU", "CPU")}
    task = ray.remote(_run_there).options(
        num_cpus=resources.get("CPU", 0), num_gpus=gpus, resources=custom, max_retries=0
    )
    ref = task.remote(scenario, str(scenario_file), options)
    try:
        result: RunResult = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if exc.cause is not None else exc
        if isinstance(cause, BenchError):
            raise cause from None
        first = (str(cause).strip().splitlines() or [""])[0]
        raise BenchError(
            f"the run on the cluster failed: {type(cause).__name__}: {first}"
        ) from None
    except BaseException:
        ray.cancel(ref, force=True)
        raise
    store.save(result.to_json())
    return result


@contextlib.contextmanager
def cluster_runner(
    cluster: str | None, resources: str | None
) -> Iterator[Callable[[Scenario, Path, ResultStore, RunOptions, Progress], RunResult]]:
    """What ``bench run --cluster`` calls instead of :func:`run_scenario`, for the ``with``
    block: a run here with clients on the load nodes, or (``--resources``) a whole run on a
    node offering them."""
    if cluster is None:
        raise InputError("--resources: only with --cluster (a node of which cluster?)")
    spec = ClusterSpec.parse(cluster)
    wanted = parse_resources(resources) if resources else None
    with open_cluster(spec.text) as session:
        if wanted is None:
            yield run_scenario
            return

        def run_there(
            scenario: Scenario, path: Path, store: ResultStore, options: RunOptions, _: Progress
        ) -> RunResult:
            return run_on_node(session, wanted, scenario, path, store, options)

        yield run_there
