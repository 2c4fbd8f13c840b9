"""Measuring a deployment the harness did not start: ``bench serve`` in one process, a
scenario pointing at it in another; its serving block read from the server, its own queue
and compute times scraped; nothing left running once ``bench serve`` is stopped."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from engines.triton import metrics
from engines.triton.client import deployed_serving
from engines.triton.system import TritonOptions
from harness.deployment import check_serving
from harness.errors import InputError
from harness.runner import run_scenario
from harness.scenario import Scenario, load_scenario
from harness.storage import ResultStore
from harness.table import cell
from tests.cli_helpers import bench, start_bench
from tests.conftest import hello_scenario

pytestmark = pytest.mark.usefixtures("no_leaks")

LOAD = {"clients": [2], "warmup_s": 0.1, "duration_s": 0.6, "repeats": 1, "max_repeats": 1}


@contextmanager
def served(scenario_path: str, system: str) -> Iterator[dict[str, str]]:
    """``bench serve`` running; its printed endpoints. On exit: SIGTERM, and every process
    it started (seen while it ran) must be gone."""
    run = start_bench("serve", scenario_path, "--system", system)
    assert run.stdout is not None
    endpoints: dict[str, str] = {}
    try:
        for line in run.stdout:
            if line.startswith("  "):
                key, _, value = line.strip().partition(": ")
                endpoints[key] = value
            if line.startswith("ready"):
                break
        else:
            pytest.fail(f"bench serve ended: {run.wait()} {run.stderr.read()}")  # type: ignore[union-attr]
        started = psutil.Process(run.pid).children(recursive=True)
        assert started, "bench serve started no server process"
        yield endpoints
    finally:
        run.send_signal(signal.SIGTERM)
        rest = run.communicate(timeout=60)[0]
    assert run.returncode == 0, rest
    assert "stopped" in rest
    alive = [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"bench serve left {alive} running"


def remote(write_scenario, tmp_path, spec: dict, **overrides) -> Scenario:
    data = hello_scenario(name="remote", load=LOAD, systems=[spec])
    data.update(overrides)
    return load_scenario(write_scenario(data, "remote.yaml"))


def test_serve_triton_then_measure_it_remotely(write_scenario, tmp_path):
    path = write_scenario(hello_scenario(systems=["triton"]), "served.yaml")
    with served(str(path), "triton") as where:
        assert where["model"] == "pipebench"
        options = {"url": where["http"], "model": "pipebench", "metrics_url": where["metrics"]}
        scenario = remote(write_scenario, tmp_path, {"name": "triton", "options": options})
        result = run_scenario(scenario, path, ResultStore(tmp_path, "r"))
        (record,) = result.records
        assert record.failure is None and record.qps > 0
        assert record.cpu["server_pct"] is None  # unknown, not zero
        assert "unknown" in record.server_stats["server_cpu"]
        # The served Triton runs here, outside the harness's tree: it is the system under
        # test, not other work, so no turn is retaken for it and no share is claimed.
        assert record.others_cpu_pct is None and record.retaken_turns == 0
        serving = record.server_stats["serving"]
        assert (serving["instances"], serving["max_batch"]) == (1, 1)
        times = record.server_stats["server_times"]
        assert times["requests"] >= record.ok
        assert times["queue_us"] > 0 and times["compute_us"] >= times["compute_infer_us"] > 0

        wrong = remote(
            write_scenario, tmp_path, {"name": "triton", "options": options},
            serving={"max_batch": 4},
        )  # fmt: skip
        with pytest.raises(InputError, match=r"serving.max_batch: the scenario says 4 .* with 1"):
            run_scenario(wrong, path, ResultStore(tmp_path, "w"))

        grpc = {"url": where["grpc"], "model": "pipebench"}
        scenario = remote(write_scenario, tmp_path, {"name": "triton", "options": grpc})
        (record,) = run_scenario(scenario, path, ResultStore(tmp_path, "g")).records
        assert record.failure is None and record.qps > 0
        assert "no metrics at http://127.0.0.1:8002" in record.server_stats["metrics"]


def test_serve_pipe_thrift_and_take_its_serving_block_as_deployed(write_scenario, tmp_path):
    serving = {"instances": 2, "batching_timeout_ms": 1, "max_batch": 4}
    path = write_scenario(hello_scenario(serving=serving), "served.yaml")
    with served(str(path), "pipe+thrift") as where:
        spec = {"name": "pipe+thrift", "options": {"address": where["address"]}}
        scenario = remote(write_scenario, tmp_path, spec, serving="as_deployed")
        (record,) = run_scenario(scenario, path, ResultStore(tmp_path, "r")).records
        assert record.failure is None and record.qps > 0
        deployed = record.server_stats["serving"]
        assert (deployed["instances"], deployed["max_batch"]) == (2, 4)
        assert deployed["batching_timeout_ms"] == 1
        assert record.cpu["server_pct"] is None
        assert record.server_stats["server_times"]["compute_us"] > 0


def test_serve_refuses_an_in_process_system(write_scenario):
    path = write_scenario(hello_scenario(systems=["pipe", "thrift"]))
    done = bench("serve", str(path), "--system", "pipe")
    assert done.returncode == 2
    assert "runs inside the harness's own process" in done.stderr
    missing = bench("serve", str(path), "--system", "triton")
    assert missing.returncode == 2 and "'triton' is not one system" in missing.stderr


def test_as_deployed_needs_remote_systems_only(write_scenario):
    data = hello_scenario(serving="as_deployed", systems=["pipe"])
    with pytest.raises(InputError, match=r"as_deployed needs remote systems only.*pipe"):
        load_scenario(write_scenario(data))


def test_triton_url_scheme_chooses_the_protocol():
    options = TritonOptions.model_validate({"url": "grpc://10.0.0.1:8001", "model": "m"})
    assert (options.protocol, options.address) == ("grpc", "10.0.0.1:8001")
    assert options.remote_metrics == "http://10.0.0.1:8002/metrics"
    with pytest.raises(ValueError, match="name the model"):
        TritonOptions.model_validate({"url": "http://h:8000"})
    with pytest.raises(ValueError, match="neither http:// nor grpc://"):
        TritonOptions.model_validate({"url": "ftp://h:8000", "model": "m"})


def test_model_config_in_serving_terms_and_the_contradiction_message(make_scenario):
    config = {
        "max_batch_size": 8,
        "dynamic_batching": {"max_queue_delay_microseconds": 500},
        "instance_group": [{"count": 2, "kind": "KIND_GPU"}, {"count": 1, "kind": "KIND_CPU"}],
    }
    deployed = deployed_serving(config)
    assert (deployed["instances"], deployed["max_batch"]) == (3, 8)
    assert deployed["batching_timeout_ms"] == 0.5
    assert deployed_serving({"max_batch_size": 0})["batching_timeout_ms"] is None
    scenario = make_scenario(serving={"instances": 3, "max_batch": 8})
    check_serving(scenario, deployed, "there")  # agrees; the unset timeout is not compared
    scenario = make_scenario(serving={"instances": 1})
    with pytest.raises(InputError, match=r"serving\.instances: the scenario says 1 but there"):
        check_serving(scenario, deployed, "there")


def test_metrics_parse_keeps_the_model_and_sums_gpus():
    text = """# TYPE nv_inference_request_success counter
nv_inference_request_success{model="m",version="1"} 10
nv_inference_request_success{model="other",version="1"} 99
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="m",version="1"} 250
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="m",version="1"} 1000
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{gpu_uuid="a"} 0.5
nv_gpu_utilization{gpu_uuid="b"} 0.25
"""
    found = metrics.parse(text, "m")
    assert found == {
        "requests": 10.0,
        "queue_us": 250.0,
        "compute_infer_us": 1000.0,
        "gpu_utilization": 0.375,
    }
    times = metrics.server_times(found)
    assert times is not None and times["compute_us"] == 1000.0
    assert metrics.server_times({"gpu_utilization": 1.0}) is None


def test_started_systems_report_server_queue_and_compute_times(make_scenario, tmp_path):
    scenario = make_scenario(load=LOAD, systems=["pipe", "pipe+thrift", "triton"])
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r"))
    for record in result.records:
        times = record.server_stats["server_times"]
        assert times["requests"] >= record.ok, record.label
        assert times["compute_us"] > 0 and times["queue_us"] >= 0, record.label
        assert "server queue" in cell(record) and "µs / compute" in cell(record)
    triton = next(r for r in result.records if r.label == "triton")
    assert triton.server_stats["server_times"]["compute_infer_us"] > 0


def test_pipe_runs_the_users_own_backend(make_scenario, write_scenario, tmp_path):
    options = {"backend": "tests.engine_backends:Double"}  # not the workload's reply
    scenario = make_scenario(load=LOAD, systems=[{"name": "pipe", "options": options}])
    (record,) = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r")).records
    assert record.failure is None and record.ok > 0 and record.errors == 0
    bad = hello_scenario(systems=[{"name": "pipe", "options": {"backend": "nowhere:Nothing"}}])
    with pytest.raises(InputError, match=r"systems\.0\.options\.backend: 'nowhere:Nothing' is not"):
        load_scenario(write_scenario(bad, "bad.yaml"))
    lonely = hello_scenario(systems=[{"name": "pipe", "options": {"params": {"a": 1}}}])
    with pytest.raises(InputError, match="give backend too"):
        load_scenario(write_scenario(lonely, "lonely.yaml"))
