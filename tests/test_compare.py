"""``bench compare``: noise-aware regression verdicts on result files, and the CLI's exit codes.

The verdict logic is tested on result files written here with known repeats, because its
job is to read files (it never runs anything); the CLI tests also use a result file from
a real run (``results/baseline/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.compare import (
    compare_paths,
    markdown,
    min_rank_p,
    parse_threshold,
    rank_test_p,
)
from harness.errors import InputError
from tests.cli_helpers import bench
from tests.conftest import ROOT, hello_scenario
from tests.result_files import record, write_result

BASELINE_DIR = ROOT / "results" / "baseline"


def verdicts(
    tmp_path: Path, base: list[dict], cur: list[dict], metric: str = "qps", **kw: Any
) -> dict:
    """The verdicts on one metric, by (label, point)."""
    found = compare_paths(
        write_result(tmp_path / "base.json", base),
        write_result(tmp_path / "cur.json", cur),
        kw.pop("threshold", 0.10),
        kw.pop("normalize_to", None),
        **kw,
    )
    return {(v.key[1], v.key[2][1]): v for v in found if v.key[3] == metric}


STEADY = [1000.0, 1012.0, 994.0, 1005.0, 990.0]


def test_a_25_percent_drop_with_repeats_is_a_regression(tmp_path):
    dropped = [q * 0.75 for q in STEADY]
    found = verdicts(tmp_path, [record("pipe", 1, STEADY)], [record("pipe", 1, dropped)])
    verdict = found[("pipe", 1)]
    assert verdict.verdict == "regressed"
    assert verdict.change == pytest.approx(-0.25)
    assert verdict.basis.startswith("rank test p=0.008")


def test_a_big_change_inside_the_noise_is_noisy_not_a_regression(tmp_path):
    wild = [700.0, 1300.0, 800.0, 1250.0, 900.0]  # mean 990, spread ±30 %
    lower = [600.0, 1150.0, 750.0, 1200.0, 620.0]  # mean 864: -12.7 %, beyond the threshold
    found = verdicts(tmp_path, [record("pipe", 1, wild)], [record("pipe", 1, lower)])
    assert found[("pipe", 1)].verdict == "noisy"
    assert found[("pipe", 1)].change < -0.10


def test_a_small_change_is_unchanged_even_when_significant(tmp_path):
    slightly = [q * 0.95 for q in STEADY]
    found = verdicts(tmp_path, [record("pipe", 1, STEADY)], [record("pipe", 1, slightly)])
    assert found[("pipe", 1)].verdict == "unchanged"


def test_three_repeats_use_the_confidence_intervals(tmp_path):
    base = [1000.0, 1010.0, 990.0]
    apart = [700.0, 705.0, 695.0]
    overlapping = [500.0, 1000.0, 800.0]
    found = verdicts(
        tmp_path,
        [record("a", 1, base), record("b", 1, base)],
        [record("a", 1, apart), record("b", 1, overlapping)],
    )
    assert found[("a", 1)].verdict == "regressed"
    assert found[("a", 1)].basis.startswith("95% CIs apart")
    assert found[("b", 1)].verdict == "noisy"
    assert found[("b", 1)].basis.startswith("95% CIs overlap")


def test_a_single_repeat_lets_the_threshold_decide_and_says_so(tmp_path):
    found = verdicts(
        tmp_path,
        [record("a", 1, [1000.0]), record("b", 1, [1000.0])],
        [record("a", 1, [850.0]), record("b", 1, [1200.0])],
    )
    assert found[("a", 1)].verdict == "regressed"
    assert found[("b", 1)].verdict == "improved"
    assert found[("a", 1)].basis == "1 repeat: threshold alone"
    table = markdown(list(found.values()), 0.10, None)
    assert "the threshold alone decided them" in table


def test_missing_points_are_reported_not_judged(tmp_path):
    base = [record("pipe", 1, STEADY), record("pipe", 10, STEADY), record("thrift", 1, STEADY)]
    cur = [record("pipe", 1, STEADY), record("triton", 1, STEADY)]
    found = verdicts(tmp_path, base, cur)
    assert found[("pipe", 1)].verdict == "unchanged"
    assert found[("pipe", 10)].verdict == "missing"
    assert found[("pipe", 10)].basis == "not in current"
    assert found[("thrift", 1)].verdict == "missing"
    assert found[("triton", 1)].basis == "not in baseline"


def test_a_system_that_failed_now_is_a_regression(tmp_path):
    failed = record("pipe", 1, [0.0]) | {"failure": "pipe: server died"}
    found = verdicts(tmp_path, [record("pipe", 1, STEADY)], [failed])
    assert found[("pipe", 1)].verdict == "regressed"
    assert "server died" in found[("pipe", 1)].basis


def test_normalizing_cancels_a_slower_machine_and_keeps_a_real_drop(tmp_path):
    """Everything 40 % slower (another machine) is no change; pipe alone 40 % slower is."""
    base = [record("pipe", 1, STEADY), record("thrift", 1, [q / 2 for q in STEADY])]
    slower_machine = [record(r["label"], 1, [q * 0.6 for q in r["qps_repeats"]]) for r in base]
    found = verdicts(tmp_path, base, slower_machine, normalize_to="thrift")
    assert found[("pipe", 1)].verdict == "unchanged"
    assert found[("pipe", 1)].baseline.value == pytest.approx(2.0)
    assert ("thrift", 1) not in found  # the reference itself is not compared

    pipe_only = [record("pipe", 1, [q * 0.6 for q in STEADY]), base[1]]
    found = verdicts(tmp_path, base, pipe_only, normalize_to="thrift")
    assert found[("pipe", 1)].verdict == "regressed"
    assert found[("pipe", 1)].change == pytest.approx(-0.4)


def test_rank_test_p_values_are_exact():
    assert rank_test_p((1, 2, 3, 4), (5, 6, 7, 8)) == pytest.approx(2 / 70)
    assert rank_test_p((1, 3, 5, 7), (2, 4, 6, 8)) > 0.5
    assert min_rank_p(3, 3) == pytest.approx(0.1)  # too few repeats to ever reach 0.05
    assert min_rank_p(4, 4) < 0.05


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("0.25", 0.25), (" 50% ", 0.5)])
def test_threshold_forms(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "-5%", "0", ""])
def test_bad_thresholds_are_input_errors(text):
    with pytest.raises(InputError, match="--threshold"):
        parse_threshold(text)


# -- the command line ------------------------------------------------------------------------


def scaled_copy(source: Path, target: Path, factor: float) -> Path:
    document = json.loads(source.read_text())
    for entry in document["records"]:
        entry["qps"] *= factor
        if entry.get("qps_repeats"):
            entry["qps_repeats"] = [q * factor for q in entry["qps_repeats"]]
        if entry.get("qps_ci95"):
            entry["qps_ci95"] = [q * factor for q in entry["qps_ci95"]]
    target.write_text(json.dumps(document))
    return target


def baseline_file() -> Path:
    files = sorted(BASELINE_DIR.glob("*.json"))
    assert files, "results/baseline/ holds the committed smoke baseline"
    return files[0]


def test_cli_a_file_against_itself_exits_0(tmp_path):
    source = baseline_file()
    out = tmp_path / "bench.json"
    done = bench("compare", str(source), str(source), "--json-out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| verdict |" in done.stdout and "regressed" not in done.stdout
    entries = json.loads(out.read_text())
    records = json.loads(source.read_text())["records"]
    assert len(entries) == len(records)
    assert {e["unit"] for e in entries} == {"QPS"}
    assert sorted(e["value"] for e in entries) == pytest.approx(sorted(r["qps"] for r in records))
    assert all(set(e) >= {"name", "unit", "value"} for e in entries)


def test_cli_qps_scaled_by_0_7_exits_1(tmp_path):
    source = baseline_file()
    slower = scaled_copy(source, tmp_path / "slower.json", 0.7)
    done = bench("compare", str(source), str(slower))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "-30.0%" in done.stdout and "regressed" in done.stdout
    # The same drop for every system is no change at all once normalized.
    done = bench("compare", str(source), str(slower), "--normalize-to", "thrift")
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    source = baseline_file()
    done = bench("compare", str(source), str(source), "--threshold", "lots")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: --threshold: 'lots' is not a positive fraction or percentage (10%)"
    )
    done = bench("compare", str(source), str(tmp_path / "nope.json"))
    assert done.returncode == 2 and "no such file" in done.stderr
    assert "Traceback" not in done.stderr
    done = bench("compare", str(source), str(source), "--normalize-to", "nosuch")
    assert done.returncode == 2 and "--normalize-to" in done.stderr
    unwritable = tmp_path / "no" / "such" / "dir.json"
    done = bench("compare", str(source), str(source), "--json-out", str(unwritable))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {unwritable}: cannot write: No such file or directory"


# -- latency ---------------------------------------------------------------------------------


def with_latency(entry: dict, p50s: list[float], p99s: list[float] | None = None) -> dict:
    """``entry`` with these per-repeat TP50s (and TP99s, default 2 x TP50)."""
    p99s = p99s or [2 * p for p in p50s]
    for repeat, p50, p99 in zip(entry["per_repeat"], p50s, p99s, strict=True):
        repeat.update(p50_ms=p50, p90_ms=1.5 * p50, p99_ms=p99)
    entry["latency_ms"] = {
        "p50": float(np.median(p50s)),
        "p90": 1.5 * float(np.median(p50s)),
        "p99": float(np.median(p99s)),
        "max": 3 * max(p99s),
        "mean": float(np.mean(p50s)),
    }
    return entry


def open_loop(label: str, rate: float, qps: list[float], p50s: list[float]) -> dict:
    entry = record(label, 0, qps) | {"clients": None, "rate": rate}
    return with_latency(entry, p50s)


def test_a_tp50_rise_with_repeats_is_a_regression_qps_unchanged(tmp_path):
    """Open loop: QPS is pinned to the offered rate; only latency can show the regression."""
    base = [open_loop("pipe", 100, [100.0, 99.8, 100.1, 100.0, 99.9], [1.1, 1.12, 1.09, 1.1, 1.11])]
    cur = [open_loop("pipe", 100, [100.0, 100.1, 99.9, 100.0, 99.8], [3.1, 3.12, 3.09, 3.1, 3.2])]
    qps = verdicts(tmp_path, base, cur)[("pipe", 100)]
    p50 = verdicts(tmp_path, base, cur, metric="p50")[("pipe", 100)]
    assert qps.verdict == "unchanged"
    assert p50.verdict == "regressed" and p50.basis.startswith("rank test p=0.008")
    assert p50.change == pytest.approx(3.1 / 1.1 - 1)
    table = markdown(
        compare_paths(tmp_path / "base.json", tmp_path / "cur.json", 0.1, None), 0.1, None
    )
    assert "| pipe | 100 req/s | TP50 |" in table and "Regressed: TP50, TP99." in table


def test_a_latency_drop_is_an_improvement_and_noise_is_noisy(tmp_path):
    steady = [1.0, 1.01, 0.99, 1.0, 1.02]
    base = [
        with_latency(record("a", 1, STEADY), steady),
        with_latency(record("b", 1, STEADY), steady),
    ]
    cur = [
        with_latency(record("a", 1, STEADY), [0.5, 0.51, 0.49, 0.5, 0.52]),
        with_latency(record("b", 1, STEADY), [0.6, 2.0, 0.7, 1.9, 1.5]),  # median 1.5, wild
    ]
    found = verdicts(tmp_path, base, cur, metric="p50")
    assert found[("a", 1)].verdict == "improved"
    assert found[("b", 1)].verdict == "noisy"


def test_metrics_can_be_limited_to_qps(tmp_path):
    base = [with_latency(record("a", 1, STEADY), [1.0] * 5)]
    cur = [with_latency(record("a", 1, STEADY), [9.0] * 5)]
    assert verdicts(tmp_path, base, cur, metric="p50")[("a", 1)].verdict == "regressed"
    assert verdicts(tmp_path, base, cur, metric="p50", metrics=("qps",)) == {}


def test_cli_latency_regression_exits_1_and_writes_smaller_is_better_json(tmp_path):
    base = write_result(
        tmp_path / "b" / "r.json", [with_latency(record("pipe", 1, [1000.0]), [1.0])]
    )
    cur = write_result(
        tmp_path / "c" / "r.json", [with_latency(record("pipe", 1, [1000.0]), [2.0])]
    )
    out = tmp_path / "bench.json"
    done = bench("compare", str(base), str(cur), "--json-out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Regressed: TP50, TP99." in done.stdout
    assert [e["unit"] for e in json.loads(out.read_text())] == ["QPS"]
    latency = json.loads((tmp_path / "bench-latency.json").read_text())
    assert [(e["name"], e["unit"], e["value"]) for e in latency] == [
        ("demo / pipe / 1 client / TP50", "ms", 2.0),
        ("demo / pipe / 1 client / TP99", "ms", 4.0),
    ]
    done = bench("compare", str(base), str(cur), "--metrics", "qps")
    assert done.returncode == 0, done.stdout + done.stderr
    done = bench("compare", str(base), str(cur), "--metrics", "qps,p95")
    assert done.returncode == 2 and done.stderr.startswith("error: --metrics: p95 is not one of")


# -- input errors and incomplete runs (issue 12) ---------------------------------------------


def test_cli_a_malformed_record_is_one_line_and_exit_2(tmp_path):
    bad = write_result(tmp_path / "bad.json", [record("pipe", 1, [100.0]) | {"qps": "fast"}])
    done = bench("compare", str(baseline_file()), str(bad))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"error: {bad}: records.0.qps: Input should be a valid number, "
        "unable to parse string as a number"
    )


def test_cli_an_empty_folder_is_no_result_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = bench("compare", str(empty), str(baseline_file()))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {empty}: no result files (*.json) in this folder"


def test_cli_an_incomplete_current_run_fails_unless_allowed(tmp_path):
    points = [record("pipe", 1, STEADY), record("pipe", 10, STEADY)]
    base = write_result(tmp_path / "b" / "r.json", points)
    cur = write_result(tmp_path / "c" / "r.json", points[:1])
    document = json.loads(cur.read_text())
    document["complete"] = False
    document["scenario"]["load"]["clients"] = [1, 10]  # it meant to measure both
    cur.write_text(json.dumps(document))
    done = bench("compare", str(base), str(cur))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "| pipe | 10 clients | QPS | 1000 [989, 1011] | - | - | incomplete |" in done.stdout
    assert "--allow-incomplete" in done.stdout
    done = bench("compare", str(base), str(cur), "--allow-incomplete")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not in current (run incomplete, allowed)" in done.stdout


@pytest.mark.usefixtures("no_leaks")
def test_cli_echo_delay_3_vs_1_ms_open_loop_regresses_tp50(write_scenario, tmp_path):
    """The issue's check on real runs: at 100 req/s QPS stays equal, TP50 triples."""
    runs = {}
    for delay in (1, 3):
        scenario = hello_scenario(
            name="delay",
            workload={"name": "echo", "payload": "HelloWorld", "delay_ms": delay},
            systems=["pipe"],
            load={
                "rates": [100],
                "arrival": "constant",
                "max_outstanding": 1,
                "warmup_s": 0.3,
                "duration_s": 1.5,
                "max_windows": 3,
                "repeats": 1,
            },
        )
        runs[delay] = tmp_path / f"delay{delay}"
        path = write_scenario(scenario, f"delay{delay}.yaml")
        done = bench("run", str(path), "--results-dir", str(runs[delay]))
        assert done.returncode == 0, done.stderr
    done = bench("compare", str(runs[1]), str(runs[3]))
    assert done.returncode == 1, done.stdout
    rows = {row.split(" | ")[3]: row for row in done.stdout.splitlines() if "| delay |" in row}
    assert "| unchanged |" in rows["QPS"], rows["QPS"]
    assert "| regressed |" in rows["TP50"], rows["TP50"]
    assert "Regressed: TP50" in done.stdout
    assert bench("compare", str(runs[3]), str(runs[3])).returncode == 0
