"""The result contract: models, schema versions and the v1 migration, histograms (built,
merged across repeats and client processes), windows, and the export to CSV."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hdrh.histogram import HdrHistogram

from harness import histogram
from harness.aggregate import summarize
from harness.errors import InputError
from harness.export import COLUMNS, write_csv
from harness.measurement import ERROR, OK, Run, Samples
from harness.results import SCHEMA_VERSION, PointRecord, RunResult, read_result
from harness.scenario import Load, SystemSpec
from harness.stats import percentile_ns
from harness.system import create_system
from tests.cli_helpers import bench
from tests.conftest import ROOT, hello_scenario
from tests.result_files import record, write_result

V1_FILE = ROOT / "tests" / "data" / "result-v1-hello_world.json"
DEADLINE_S = 30.0


# -- the models ------------------------------------------------------------------------------


def test_a_document_round_trips_through_json(tmp_path):
    path = write_result(tmp_path / "r.json", [record("pipe", 1, [100.0, 110.0])])
    result = read_result(path)
    assert result.schema_version == SCHEMA_VERSION
    again = RunResult.model_validate(json.loads(json.dumps(result.to_json())))
    assert again == result
    (point,) = result.records
    assert point.point_key == ("clients", 1) and point.per_repeat[1].qps == 110.0


def test_unknown_record_fields_are_refused():
    """A writer's typo fails at once instead of vanishing on the next read."""
    with pytest.raises(ValueError, match="qsp"):
        PointRecord(system="pipe", label="pipe", clients=1, qsp=3.0)
    with pytest.raises(ValueError, match="neither clients nor rate"):
        PointRecord(system="pipe", label="pipe")


def test_a_version_1_file_is_migrated():
    original = json.loads(V1_FILE.read_text())
    assert original.get("schema_version", 1) == 1
    result = read_result(V1_FILE)
    assert result.schema_version == 2
    assert len(result.records) == len(original["records"])
    for migrated, old in zip(result.records, original["records"], strict=True):
        assert (migrated.label, migrated.qps, migrated.valid) == (
            old["label"],
            old["qps"],
            old["valid"],
        )
        assert migrated.latency_ms == pytest.approx(old["latency_ms"])
        assert migrated.histogram is None and migrated.per_repeat == [] and migrated.windows == []
    assert result.environment.cpu == original["environment"]["cpu"]


def test_an_oldest_file_without_validity_marks_reads_as_valid(tmp_path):
    old = record("pipe", 1, [100.0]) | {"latency_histogram": {"edges_ms": [], "counts": []}}
    for key in ("valid", "stable", "per_repeat"):
        old.pop(key)
    result = read_result(write_result(tmp_path / "old.json", [old], schema_version=1))
    assert result.records[0].valid and result.records[0].stable


def test_a_newer_version_is_one_line_and_exit_2(tmp_path):
    path = write_result(tmp_path / "new.json", [record("pipe", 1, [100.0])], schema_version=3)
    with pytest.raises(InputError, match=r"schema_version: 3 is newer than this pipebench reads"):
        read_result(path)
    done = bench("compare", str(path), str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: {path}: schema_version: 3 is newer than this pipebench reads (2); "
        "upgrade pipebench to read it"
    )


# -- histograms ------------------------------------------------------------------------------


def lognormal_ns(seed: int, size: int, median_ms: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(np.log(median_ms * 1e6), 0.8, size).astype(np.int64)


def test_the_vectorised_histogram_equals_hdrhistograms_own_recording():
    latencies = lognormal_ns(1, 5000)
    ours = histogram.of_latencies(latencies, DEADLINE_S)
    reference = HdrHistogram(1, int(DEADLINE_S * 1e6), 3)
    for value in (latencies + 500) // 1000:
        reference.record_value(int(value))
    assert ours.get_total_count() == reference.get_total_count() == 5000
    assert all(
        ours.get_count_at_index(i) == reference.get_count_at_index(i)
        for i in range(ours.counts_len)
    )
    decoded = HdrHistogram.decode(histogram.encode(ours).encode())
    for percent in (50, 90, 99, 99.5):
        exact_us = percentile_ns(latencies, percent) / 1e3
        assert decoded.get_value_at_percentile(percent) == pytest.approx(exact_us, rel=2e-3, abs=1)


def test_histograms_merge_across_client_processes():
    """Client processes' samples concatenate; their histograms add up to the same counts."""
    parts = [lognormal_ns(seed, 3000) for seed in range(3)]
    merged = histogram.merge(
        [histogram.encode(histogram.of_latencies(p, DEADLINE_S)) for p in parts], DEADLINE_S
    )
    whole = histogram.of_latencies(np.concatenate(parts), DEADLINE_S)
    assert merged.get_total_count() == whole.get_total_count() == 9000
    assert all(
        merged.get_count_at_index(i) == whole.get_count_at_index(i) for i in range(whole.counts_len)
    )


def synthetic_run(seed: int, windows: int = 4, window_ns: int = 1_000_000_000) -> Run:
    """``windows`` windows of 2000 requests each, 1 % errors, lognormal latencies."""
    start = 10**12 + seed * 10 * window_ns
    per_window = 2000
    starts = np.concatenate(
        [
            start + w * window_ns + np.arange(per_window) * (window_ns // per_window)
            for w in range(windows)
        ]
    ).astype(np.int64)
    latency = lognormal_ns(seed, starts.size)
    outcome = np.where(np.arange(starts.size) % 100 == 0, ERROR, OK).astype(np.int8)
    boundaries = [start + w * window_ns for w in range(windows + 1)]
    return Run(Samples(starts, latency, outcome), boundaries, stable=True)


@pytest.fixture
def null_system(make_scenario):
    scenario = make_scenario(systems=["pipe"])
    return create_system(SystemSpec(name="null"), scenario)


def test_summarize_keeps_histograms_repeats_and_windows(null_system):
    runs = [synthetic_run(seed) for seed in range(3)]
    load = Load(clients=[1], request_timeout_s=DEADLINE_S)
    point = summarize(null_system, SystemSpec(name="null"), load, 1, runs)
    # The point's histogram: every OK reply of every repeat's measured windows.
    decoded = HdrHistogram.decode(point.histogram.encode())
    assert decoded.get_total_count() == point.ok == sum(r.ok for r in point.per_repeat)
    for percent, key in ((50, "p50"), (90, "p90"), (99, "p99")):
        assert histogram.percentile_ms(decoded, percent) == pytest.approx(
            point.latency_ms[key], rel=1e-3, abs=1e-3
        )
    # ... and exactly the sum of the repeats' histograms.
    merged = histogram.merge([r.histogram for r in point.per_repeat], DEADLINE_S)
    assert all(
        merged.get_count_at_index(i) == decoded.get_count_at_index(i)
        for i in range(decoded.counts_len)
    )
    assert [r.qps for r in point.per_repeat] == point.qps_repeats
    assert all(r.errors == 60 and r.duration_s == pytest.approx(3.0) for r in point.per_repeat)
    # Every window of every repeat; the last three of each are the measured ones.
    assert len(point.windows) == 12
    assert [w.measured for w in point.windows[:4]] == [False, True, True, True]
    assert point.windows[0].start_s == 0.0
    assert point.windows[4].start_s == pytest.approx(10.0)  # repeat 1 started 10 s later
    assert all(w.errors == 20 and w.p99_ms > w.p50_ms > 0 for w in point.windows)


def test_a_window_without_replies_is_written_and_read_back_and_drawn(null_system, tmp_path):
    """A window in which no reply came back (a stalled server) has no latency: the file
    says so (null), and the file reads back and renders like any other."""
    whole = synthetic_run(0)
    begin, end = whole.boundaries_ns[2], whole.boundaries_ns[3]
    starts = whole.samples.start_ns
    keep = (starts < begin) | (starts >= end)
    samples = Samples(starts[keep], whole.samples.latency_ns[keep], whole.samples.outcome[keep])
    stalled = Run(samples, whole.boundaries_ns, stable=True)
    load = Load(clients=[1], request_timeout_s=DEADLINE_S)
    point = summarize(null_system, SystemSpec(name="null"), load, 1, [stalled] * 6)
    assert point.windows[2].p50_ms is None and point.windows[2].qps < point.windows[1].qps
    path = write_result(tmp_path / "results" / "stalled.json", [point.model_dump(mode="json")])
    (again,) = read_result(path).records
    assert again.windows == point.windows
    done = bench("report", str(path.parent), "--out", str(tmp_path / "reports"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reports" / "img" / "demo-clients-1.png").exists()  # windows drawn


# -- export ----------------------------------------------------------------------------------


def test_export_csv_has_one_row_per_system_and_point(tmp_path):
    ours = write_result(
        tmp_path / "in" / "demo.json",
        [
            record("pipe", 1, [100.0, 110.0, 105.0]),
            record("pipe", 10, [300.0]),
            record("thrift", 1, [0.0]) | {"failure": "thrift: died\nlog tail", "ok": 0},
        ],
    )
    out = tmp_path / "out.csv"
    done = bench("export", str(ours), str(V1_FILE), "--csv", str(out))
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out)
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 3 + len(read_result(V1_FILE).records)
    pipe = frame[(frame["scenario"] == "demo") & (frame["label"] == "pipe")]
    assert list(pipe["clients"]) == [1, 10] and pipe["rate"].isna().all()
    assert pipe["qps"].tolist() == [105.0, 300.0]
    assert pipe["qps_ci95_low"].notna().tolist() == [True, False]
    assert pipe["p99_ms"].tolist() == [2.0, 2.0]
    failed = frame[frame["label"] == "thrift"].iloc[0]
    assert failed["failure"] == "thrift: died" and math.isnan(failed["qps"])
    assert not failed["valid"]


def test_export_of_nothing_is_an_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no result files"):
        write_csv([tmp_path / "empty"], tmp_path / "x.csv")


def test_result_files_carry_real_histograms(tmp_path: Path) -> None:
    """Written by a real run: every point decodes, its p99 agrees with TP99."""
    scenario = tmp_path / "s.yaml"
    load = {"clients": [1, 2], "warmup_s": 0.1, "duration_s": 0.6, "max_windows": 3}
    scenario.write_text(yaml.safe_dump(hello_scenario(systems=["pipe"], load=load)))
    results = tmp_path / "results"
    done = bench("run", str(scenario), "--quick", "--results-dir", str(results), "--save-samples")
    assert done.returncode == 0, done.stderr
    (path,) = results.glob("*.json")
    document = json.loads(path.read_text())
    assert document["schema_version"] == 2
    samples = pd.read_csv(results / f"{path.stem}.samples.csv.gz")
    for point in read_result(path).records:
        decoded = HdrHistogram.decode(point.histogram.encode())
        assert decoded.get_total_count() == point.ok
        # The same rank agrees to the histogram's precision: 3 digits, and 1 µs (its unit).
        assert histogram.percentile_ms(decoded, 99) == pytest.approx(
            point.latency_ms["p99"], rel=1e-3, abs=1e-3
        )
        assert point.windows and all(w.qps > 0 for w in point.windows)
        mine = samples[(samples["label"] == point.label) & (samples["clients"] == point.clients)]
        measured = mine[mine["measured"]]
        assert len(measured) == point.sent
        assert (measured["outcome"] == "ok").sum() == point.ok
