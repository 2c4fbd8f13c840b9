"""SLO search and sweep ranges: the highest rate within a latency bound, found by bisection
with the harness's own measurement of a point, and the overrides of ``bench run``."""

from __future__ import annotations

import pytest

from harness.errors import InputError
from harness.results import PointRecord
from harness.runner import run_scenario
from harness.scenario import Load, expand_range, load_scenario, override
from harness.search import find_goodput, summary, within
from harness.storage import ResultStore
from tests.cli_helpers import bench
from tests.conftest import hello_scenario


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1:64:x2", [1, 2, 4, 8, 16, 32, 64]),
        ("100:500:+100", [100, 200, 300, 400, 500]),
        ("1:3", [1, 2, 3]),
        ("1,4", [1, 4]),
        ("5:5", [5]),
    ],
)
def test_range_syntax(text, values):
    assert expand_range(text) == values


@pytest.mark.parametrize("text", ["4:1", "1:5:x1", "1:5:+0", "1:2:3:4", "0:4"])
def test_bad_ranges_are_refused(text):
    with pytest.raises(ValueError, match=r"range|step"):
        expand_range(text)


def test_load_takes_ranges_and_one_of_clients_rates_or_search():
    assert Load(clients="1:8:x2").clients == [1, 2, 4, 8]
    assert Load(rates="100:300:+100").rates == [100.0, 200.0, 300.0]
    searching = Load(search={"p99_ms": 5, "rates": "100:2000"})
    assert searching.mode == "open" and searching.search.title == "goodput at p99 ≤ 5 ms"
    with pytest.raises(ValueError, match="exactly one"):
        Load(rates=[100], search={"p99_ms": 5, "rates": "100:2000"})
    with pytest.raises(ValueError, match="p99_ms or p50_ms"):
        Load(search={"p99_ms": 5, "p50_ms": 1, "rates": "1:2"})
    with pytest.raises(ValueError, match="low:high"):
        Load(search={"p50_ms": 5, "rates": "200:100"})


def _fake_point(rate: float, p99_ms: float) -> PointRecord:
    """A record as the runner makes it, for the bisection's bookkeeping only."""
    return PointRecord(
        system="x", label="x", rate=rate, sent=1000, ok=1000, latency_ms={"p99": p99_ms}
    )


def test_bisection_brackets_the_knee_and_checks_above_it():
    load = Load(search={"p99_ms": 5, "rates": "100:10000", "precision_pct": 2})
    measured: list[float] = []

    def measure(rate: float) -> PointRecord:
        measured.append(rate)
        return _fake_point(rate, 1.0 if rate <= 1234 else 50.0)

    records = find_goodput(measure, load)
    goodput = [r for r in records if r.server_stats["slo"]["role"] == "goodput"]
    assert len(goodput) == 1 and 1234 / 1.02 <= goodput[0].rate <= 1234
    check = records[-1]
    assert check.rate == round(goodput[0].rate * 1.2) and not check.server_stats["slo"]["within"]
    assert measured[:2] == [100, 10000] and len(records) <= load.search.max_probes + 1
    (line,) = summary(records)
    assert line.startswith(f"goodput at p99 ≤ 5 ms: x {goodput[0].rate:g} req/s")
    assert line.endswith("exceeds it")


def test_a_stalled_probe_below_the_knee_is_outvoted_by_the_check_above_it():
    """On a busy machine one probe under the knee can stall and miss the bound (stop 12's
    burner run: goodput 209 req/s, and the check at 251 held). The check holding sends the
    search on upward, so the goodput reported is one the check above it disproves."""
    load = Load(search={"p99_ms": 5, "rates": "50:800"})
    measured: list[float] = []

    def measure(rate: float) -> PointRecord:
        measured.append(rate)
        stalled = len(measured) == 3  # rate 200, far below the knee at 300
        return _fake_point(rate, 50.0 if rate > 300 or stalled else 1.0)

    records = find_goodput(measure, load)
    (goodput,) = [r for r in records if r.server_stats["slo"]["role"] == "goodput"]
    (check,) = [r for r in records if r.server_stats["slo"]["role"] == "goodput +20 %"]
    assert 300 / 1.05 <= goodput.rate <= 300
    assert check.rate == round(goodput.rate * 1.2) and not check.server_stats["slo"]["within"]
    assert records[-1] is check and measured[2] == 200 and len(set(measured)) == len(measured)


def test_when_the_top_rate_holds_the_check_is_above_it():
    load = Load(search={"p99_ms": 5, "rates": "100:200"})
    records = find_goodput(lambda rate: _fake_point(rate, 1.0), load)
    assert [r.rate for r in records] == [100, 200, 240]
    assert records[1].server_stats["slo"]["role"] == "goodput"
    assert summary(records)[0].endswith("at 240 req/s p99 1.00 ms: within it")


def test_no_goodput_when_the_lowest_rate_misses_twice():
    load = Load(search={"p50_ms": 1, "rates": "100:200"})
    records = find_goodput(lambda rate: _fake_point(rate, 9.0), load)
    assert [r.rate for r in records] == [100, 100]
    (line,) = summary(records)
    assert line == "goodput at p50 ≤ 1 ms: x: none (the lowest rate missed it twice)"


def test_one_stalled_probe_at_the_lowest_rate_does_not_end_the_search():
    """Stop 22's burner run: the lowest rate (50 req/s, a fifth of the capacity) missed its
    bound once (its 1000 ms p99 or its error limit), and the search reported no goodput."""
    load = Load(search={"p99_ms": 5, "rates": "50:800"})
    measured: list[float] = []

    def measure(rate: float) -> PointRecord:
        measured.append(rate)
        return _fake_point(rate, 50.0 if rate > 300 or len(measured) == 1 else 1.0)

    records = find_goodput(measure, load)
    (goodput,) = [r for r in records if r.server_stats["slo"]["role"] == "goodput"]
    assert measured[:3] == [50, 50, 800] and 300 / 1.05 <= goodput.rate <= 300
    assert (
        not records[0].server_stats["slo"]["within"]
        and records[0].server_stats["slo"]["role"] == "probe"
    )


def test_errors_break_the_bound():
    load = Load(search={"p99_ms": 5, "rates": "100:200"})
    record = _fake_point(100, 1.0)
    assert within(record, load.search, load)
    record.errors = 10
    assert not within(record, load.search, load)


@pytest.mark.usefixtures("no_leaks")
def test_search_on_pipe_thrift_finds_a_goodput_within_the_bound(write_scenario, tmp_path):
    """The done-when: the goodput's measured p99 is within the bound and a rate 20 % above
    it exceeds it. The server is pipe+thrift with a backend that sleeps 4 ms per request
    (one instance, no batching: 250 requests/s at most), so past the knee the queue grows
    through the whole window: at rate r the last request waits about (r/250 - 1) x 3 s,
    which puts the goodput near 330 req/s and its check near 400 req/s (1.8 s). The bound
    is far above this machine's scheduling stalls: under two burners a 300 ms bound was
    missed at 50 req/s (p99 342 ms of 88 requests: one stalled request)."""
    options = {"backend": "tests.engine_backends:Sleep", "params": {"delay": 0.004}}
    data = hello_scenario(
        name="search",
        load={
            "search": {"p99_ms": 1000, "rates": "50:800"},
            "warmup_s": 0.5,
            "duration_s": 3.0,
            "repeats": 1,
            "max_repeats": 1,
        },
        systems=[{"name": "pipe+thrift", "options": options}],
    )
    scenario = load_scenario(write_scenario(data))
    result = run_scenario(scenario, tmp_path / "s.yaml", ResultStore(tmp_path, "r"))
    roles = {r.server_stats["slo"]["role"]: r for r in result.records}
    probes = [
        (r.rate, r.latency_ms.get("p99"), r.sent, r.errors, r.timeouts, r.failure)
        for r in result.records
    ]
    assert "goodput" in roles and "goodput +20 %" in roles, probes
    goodput, check = roles["goodput"], roles["goodput +20 %"]
    assert goodput.latency_ms["p99"] <= 1000 and goodput.qps > 0
    assert 100 < goodput.rate < 400  # around the 250/s capacity
    assert check.rate == round(goodput.rate * 1.2)
    assert check.latency_ms["p99"] > 1000, summary(result.records)
    (line,) = summary(result.records)
    assert line.startswith(f"goodput at p99 ≤ 1000 ms: pipe+thrift {goodput.rate:g} req/s")


def test_command_line_overrides(write_scenario, tmp_path):
    path = write_scenario(hello_scenario())
    scenario = load_scenario(path)
    changed = override(path, scenario, {"load.rates": "100:300:+100", "load.duration_s": 20})
    assert changed.load.rates == [100.0, 200.0, 300.0] and changed.load.clients is None
    assert changed.load.duration_s == 20 and changed.serving == scenario.serving
    with pytest.raises(InputError, match=r"load\.repeats: .*after the command line"):
        override(path, scenario, {"load.repeats": 0})
    done = bench("run", str(path), "--set", "load.duration_s", "--results-dir", str(tmp_path))
    assert done.returncode == 2 and "FIELD.PATH=VALUE" in done.stderr
    done = bench("run", str(path), "--clients", "1", "--rates", "5", "--results-dir", str(tmp_path))
    assert done.returncode == 2 and "give one of them" in done.stderr
