"""The runner end to end on real systems: records, verdicts, placement, batch histograms."""

from __future__ import annotations

import json

import pytest

from harness.aggregate import judge
from harness.results import PointRecord
from harness.runner import Progress, run_scenario
from harness.scenario import Load
from harness.storage import ResultStore
from harness.table import markdown_table
from tests.cli_helpers import bench, only_result
from tests.conftest import hello_scenario

pytestmark = pytest.mark.usefixtures("no_leaks")

#: The record fields everyone codes against (common.md, "Shapes everyone codes against").
RECORD_FIELDS = {
    "system", "label", "clients", "rate", "qps", "latency_ms", "sent", "ok", "errors",
    "timeouts", "stable", "client_bound", "valid", "repeats", "qps_ci95", "qps_repeats",
    "batch_sizes", "failure", "first_error", "server_stats",
}  # fmt: skip
QUICK_LOAD = {"warmup_s": 0.1, "duration_s": 0.6, "max_windows": 3, "min_duration_s": 0.5}


def _record(**fields) -> PointRecord:
    base = dict(system="x", label="x", clients=1, qps=1000.0, sent=3000, ok=3000, stable=True)
    base.update(repeats=6, duration_s=3.0, qps_ci95=[970.0, 1040.0])  # ±4 %
    base.update(fields)
    return PointRecord(**base)


@pytest.mark.parametrize(
    ("fields", "ceiling", "load", "reasons"),
    [
        ({}, 10_000.0, {}, []),
        ({}, None, {}, []),
        ({"qps_ci95": [940.0, 1010.0]}, None, {}, ["imprecise"]),  # 6 % below > 5 %
        ({"qps_ci95": [940.0, 1010.0]}, None, {"precision_pct": 7}, []),
        ({"qps_ci95": None, "repeats": 3}, None, {}, ["imprecise"]),  # no interval at all
        ({"stable": False}, 10_000.0, {}, []),  # the window rule is off by default
        ({"stable": False}, 10_000.0, {"stability_pct": 10}, ["unstable"]),
        ({"duration_s": 0.5}, 10_000.0, {}, ["short"]),  # 0.5 s in all < 1 s
        ({"ok": 99, "sent": 99}, 10_000.0, {}, ["short"]),  # too few replies for a p99
        ({"errors": 4}, 10_000.0, {}, ["errors"]),  # 4 / 3000 > 0.1 %
        ({"errors": 2, "timeouts": 1}, 10_000.0, {}, []),  # 3 / 3000 = 0.1 %: at the limit
        ({"sent": 0, "ok": 0}, 10_000.0, {}, ["short", "errors"]),
        ({}, 1_999.0, {}, ["client-bound"]),  # QPS above half the client ceiling
    ],
)
def test_validity_verdict(fields, ceiling, load, reasons):
    record = judge(_record(**fields), Load(clients=[1], **load), ceiling)
    assert record.invalid_reasons == reasons
    assert record.valid is (not reasons)
    assert record.client_bound is ("client-bound" in reasons)
    assert record.client_ceiling_qps == ceiling


def test_records_carry_every_field_with_consistent_numbers(make_scenario, tmp_path):
    scenario = make_scenario(
        systems=["pipe"],
        serving={"instances": 1, "batching_timeout_ms": 2, "max_batch": 4},
        load={"clients": [1, 4], "repeats": 6, "max_repeats": 6, **QUICK_LOAD},
    )
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r"))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["complete"] is True
    for record, stored in zip(result.records, saved["records"], strict=True):
        assert set(stored) >= RECORD_FIELDS
        assert record.failure is None and record.rate is None
        assert record.sent == record.ok + record.errors + record.timeouts > 0
        assert set(record.latency_ms) == {"p50", "p90", "p95", "p99", "max", "mean"}
        assert record.repeats == 6 and len(record.qps_repeats) == len(record.per_repeat) == 6
        low, high = record.qps_ci95  # 6 rounds: [min, max] of the rounds (96.9 %)
        assert (low, high) == (min(record.qps_repeats), max(record.qps_repeats))
        assert low <= record.qps <= high
        assert record.precision_pct == pytest.approx(
            100 * max(record.qps - low, high - record.qps) / record.qps
        )
        assert record.client_ceiling_qps > record.qps
        assert record.cpu["client_pct"] > 0 and record.cpu["server_pct"] is None
        assert record.load_generator == "threads"
        # The formed batches count exactly the requests of the turns (warm-up included).
        formed = sum(size * count for size, count in record.batch_sizes.items())
        assert formed == record.batched_requests > record.ok
    one, four = result.records
    assert set(one.batch_sizes) == {1}  # a lone client never fills a batch
    assert max(four.batch_sizes) > 1  # four clients and a 2 ms wait do


def test_bench_run_prints_validity_marks(write_scenario, tmp_path):
    path = write_scenario(hello_scenario(systems=["pipe"], load={"clients": [1, 2], **QUICK_LOAD}))
    done = bench("run", str(path), "--quick", "--results-dir", str(tmp_path / "results"))
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    records = only_result(tmp_path / "results")["records"]
    assert len(rows) == len(records) == 2
    for row, record in zip(rows, records, strict=True):
        cell = row.split(" | ")[1]
        expected = "✓" if record["valid"] else "✗ " + "+".join(record["invalid_reasons"])
        assert cell.rstrip(" |").endswith(expected), row
        assert record["repeats"] == 1 and record["qps_ci95"] is None  # --quick: one round
    assert "✓ valid" in done.stdout  # the legend


def test_open_loop_scenario_keeps_its_rate(make_scenario, tmp_path):
    scenario = make_scenario(
        systems=["pipe"],
        load={"rates": [300], "arrival": "constant", "repeats": 1, "max_repeats": 1, **QUICK_LOAD},
    )
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r"))
    (record,) = result.records
    assert (record.clients, record.rate) == (None, 300)
    assert record.qps == pytest.approx(300, rel=0.1)
    assert record.sent == pytest.approx(300 * 0.6, rel=0.1)
    assert markdown_table("t", result.records, ["pipe"]).splitlines()[2] == "| rate/s | pipe |"


def test_client_processes_drive_rpc_systems_and_threads_drive_in_process_ones(
    make_scenario, tmp_path
):
    scenario = make_scenario(
        systems=["pipe", "thrift"],
        load={"clients": [3], "client_processes": 2, "repeats": 1, "max_repeats": 1, **QUICK_LOAD},
    )
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r"))
    pipe, thrift = result.records
    assert (pipe.load_generator, pipe.client_processes) == ("threads", 1)
    assert (thrift.load_generator, thrift.client_processes) == ("processes", 2)
    assert thrift.failure is None and thrift.sent == thrift.ok > 0
    assert thrift.cpu["server_pct"] > 0 and thrift.cpu["client_pct"] > 0
    # Each placement is compared with the null system placed the same way.
    assert pipe.client_ceiling_qps != thrift.client_ceiling_qps


def test_triton_batch_histogram_and_perf_analyzer_interop(make_scenario, tmp_path):
    scenario = make_scenario(
        systems=[
            "triton",
            {"name": "triton", "label": "triton-pa", "options": {"client": "perf_analyzer"}},
        ],
        serving={"instances": 1, "batching_timeout_ms": 5, "max_batch": 4},
        load={"clients": [4], "repeats": 1, "max_repeats": 1, **QUICK_LOAD, "stability_pct": 50},
    )
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r"))
    ours, theirs = result.records
    for record in (ours, theirs):
        assert record.failure is None, record.failure
        assert record.sent == record.ok > 0
        assert max(record.batch_sizes) > 1  # Triton's own statistics: batches were formed
        assert record.cpu["server_pct"] > 0
    assert ours.load_generator == "threads"
    assert (theirs.load_generator, theirs.client_bound) == ("perf_analyzer", False)
    # perf_analyzer's CSV and the record computed from its exported requests agree.
    (csv,) = theirs.server_stats["load_generator_reports"]
    assert csv["qps"] == pytest.approx(theirs.qps, rel=0.05)
    assert csv["p50"] == pytest.approx(theirs.latency_ms["p50"], rel=0.1, abs=0.05)
    assert theirs.cpu["client_pct"] > 0  # perf_analyzer's own CPU


def test_record_fields_match_the_model():
    names = set(PointRecord.model_fields)
    assert names >= RECORD_FIELDS


def test_perf_analyzer_unavailable_is_one_clear_error(tmp_path, monkeypatch):
    from engines.triton import perf_analyzer
    from harness.errors import SystemFailure

    monkeypatch.setenv("PIPEBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as offline as pip gets
    with pytest.raises(
        SystemFailure, match=r"cannot fetch the tritonclient==2\.51\.0 wheel"
    ) as info:
        perf_analyzer.binary()
    assert str(tmp_path / "perf_analyzer-2.51.0") in str(info.value)  # where to put it by hand


def test_open_loop_arrivals_are_drawn_anew_per_run_recorded_and_settable(make_scenario, tmp_path):
    """Every repeat used to replay the same Poisson schedule (the seed was the repeat's
    index): runs of one scenario sent identical counts. Now each run draws a seed and
    records it; ``load.seed`` fixes it."""
    load = {"rates": [300], "repeats": 1, "max_repeats": 1, **QUICK_LOAD}
    drawn = []
    for name in ("a", "b"):
        scenario = make_scenario(systems=["pipe"], load=load)
        run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, name))
        drawn.append(json.loads((tmp_path / f"{name}.json").read_text())["scenario"]["load"])
    assert all(isinstance(found["seed"], int) for found in drawn)
    assert drawn[0]["seed"] != drawn[1]["seed"]
    fixed = make_scenario(systems=["pipe"], load={**load, "seed": 42})
    run_scenario(fixed, tmp_path / "s.yaml", ResultStore(tmp_path, "c"))
    assert json.loads((tmp_path / "c.json").read_text())["scenario"]["load"]["seed"] == 42


class CtrlCOnceShown(Progress):
    """A user who presses Ctrl-C the moment a point's lines appear."""

    def point_finished(self, records) -> None:
        raise KeyboardInterrupt


def test_a_point_shown_is_a_point_kept_when_ctrl_c_follows_at_once(make_scenario, tmp_path):
    """The lines of a point used to be printed before its records joined the result: a
    Ctrl-C right after them (the reliability suite's, on a busy machine) saved none."""
    scenario = make_scenario(
        systems=["pipe"], load={"clients": [1, 2], "repeats": 1, "max_repeats": 1, **QUICK_LOAD}
    )
    with pytest.raises(KeyboardInterrupt):
        store = ResultStore(tmp_path, "r")
        run_scenario(scenario, tmp_path / "s.yaml", store, progress=CtrlCOnceShown())
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["complete"] is False
    kept = [(r["label"], r["clients"], r["ok"] > 0) for r in saved["records"]]
    assert kept == [("pipe", 1, True)]
