"""``bench run`` end to end, as a user runs it: real servers, real exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

from tests.cli_helpers import (
    BENCH,
    alive,
    bench,
    descendants_alive,
    only_result,
    read_until,
    wait_for_child,
)
from tests.conftest import ROOT, hello_scenario, pipebench_shm

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_run_prints_the_table_and_saves_the_same_numbers(write_scenario, tmp_path):
    path = write_scenario(hello_scenario())
    results = tmp_path / "results"
    done = bench("run", str(path), "--quick", "--results-dir", str(results))
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| clients | pipe | pipe+thrift | thrift | triton |"
    document = only_result(results)
    assert document["complete"] is True
    assert document["environment"]["cores"] == os.cpu_count()
    records = document["records"]
    assert {(r["label"], r["clients"]) for r in records} == {
        (system, clients)
        for system in ("pipe", "pipe+thrift", "thrift", "triton")
        for clients in (1, 3)
    }
    for record in records:
        assert record["failure"] is None
        assert record["qps"] > 0 and record["errors"] == 0
        assert record["sent"] == record["ok"] + record["errors"] + record["timeouts"]
        assert f"QPS {record['qps']:.0f} " in done.stdout


def test_bad_scenario_exits_2_with_one_line(write_scenario, tmp_path):
    path = write_scenario(hello_scenario(load={"clients": [-1]}))
    done = bench("run", str(path), "--results-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {path}: load.clients.0: Input should be greater than 0"
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_unknown_system_filter_exits_2(write_scenario, tmp_path):
    path = write_scenario(hello_scenario())
    done = bench("run", str(path), "--systems", "pipe,torchserve", "--results-dir", str(tmp_path))
    assert done.returncode == 2
    assert "--systems: torchserve not in this scenario" in done.stderr


def test_a_killed_server_fails_its_system_and_keeps_the_others(write_scenario, tmp_path):
    scenario = hello_scenario(
        systems=["thrift", "pipe"],
        load={"clients": [2], "warmup_s": 0.1, "duration_s": 4, "repeats": 1, "max_repeats": 1},
    )
    path = write_scenario(scenario)
    results = tmp_path / "results"
    run = subprocess.Popen(
        [*BENCH, "run", str(path), "--results-dir", str(results)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = wait_for_child(run.pid, "engines.thrift.server")
    read_until(run, "client ceiling")  # printed as its first point begins
    server.kill()
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    records = {r["label"]: r for r in only_result(results)["records"]}
    assert records["thrift"]["failure"] or records["thrift"]["errors"] > 0
    assert records["pipe"]["failure"] is None and records["pipe"]["qps"] > 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_server_and_saves_partial_results(sig, write_scenario, tmp_path):
    scenario = hello_scenario(
        systems=["thrift", "triton"], load={"clients": [2], "warmup_s": 0.1, "duration_s": 30}
    )
    path = write_scenario(scenario)
    results = tmp_path / "results"
    shm_before = set(pipebench_shm())  # others' runs on this machine are not ours to judge
    run = subprocess.Popen(
        [*BENCH, "run", str(path), "--results-dir", str(results)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_child(run.pid, "engines.thrift.server")
    read_until(run, "client ceiling")  # printed as its first point begins
    started = [psutil.Process(pid) for pid in descendants_alive(run.pid)]
    assert started
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    document_path = next(results.glob("*.json"))
    last = stderr.strip().splitlines()[-1]
    assert last == f"interrupted: servers stopped, partial results saved: {document_path}"
    deadline = time.monotonic() + 10  # exited; a zombie nobody reaps yet counts as gone
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p.pid for p in started if alive(p)]
    document = only_result(results)
    assert document["complete"] is False
    assert set(pipebench_shm()) <= shm_before
