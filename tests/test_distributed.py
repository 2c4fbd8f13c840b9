"""The parts of ``--cluster`` that need no cluster: clock offsets, node reports, bad input."""

from __future__ import annotations

import sys

import pytest

from harness.distributed import require_ray
from harness.distributed.clock import Reading, estimate
from harness.distributed.cluster import ClusterSpec, parse_resources
from harness.distributed.report import merge_reports
from harness.errors import InputError
from tests.cli_helpers import bench
from tests.conftest import hello_scenario


def _reading(sent: int, rtt: int, node_offset: int, there: int) -> Reading:
    """A round trip of ``rtt`` ns starting at ``sent``; the node read its clock ``there``
    ns after the send, on a clock ``node_offset`` ns ahead of ours."""
    return Reading(sent, sent + rtt, sent + there + node_offset, sent + there + 7, sent + rtt // 2)


def test_the_shortest_round_trip_gives_the_offset_and_bounds_it():
    offset = 5_000_000_000  # the node's monotonic clock is 5 s ahead
    readings = [
        _reading(0, 900_000, offset, 850_000),  # queued on the way back: skewed
        _reading(10_000_000, 40_000, offset, 20_000),  # symmetric and short: the best
        _reading(20_000_000, 600_000, offset, 10_000),
    ]
    found = estimate(readings)
    assert found.uncertainty_ns == 20_000
    assert found.offset_ns == offset
    assert found.wall_offset_ns == 7 + 20_000 - 20_000
    assert found.to_node(1_000) == offset + 1_000
    # A tenth of a window: 20 us is fine for 1 ms windows, not for 0.1 ms ones.
    assert not found.suspect(0.001) and found.suspect(0.0001)


def test_the_true_offset_lies_within_the_uncertainty_whenever_the_node_answered():
    for there in (0, 13_000, 40_000):  # wherever in the round trip the node read its clock
        found = estimate([_reading(0, 40_000, -3_000, there)])
        assert abs(found.offset_ns - -3_000) <= found.uncertainty_ns


def _report(node: str, sent: int, cpu: float | None, uncertainty: int, suspect: bool) -> dict:
    return {
        "node": node,
        "node_id": f"id-{node}",
        "address": "10.0.0.1",
        "senders": 5,
        "sent": sent,
        "ok": sent - 1,
        "errors": 1,
        "timeouts": 0,
        "client_cpu_pct": cpu,
        "offset_ns": 10,
        "offset_uncertainty_ns": uncertainty,
        "wall_offset_ns": 12,
        "offset_suspect": suspect,
    }


def test_node_reports_add_up_over_turns_and_keep_every_offset():
    turns = [
        [_report("b", 100, 40.0, 300, False), _report("a", 50, None, 200, False)],
        [_report("a", 70, 30.0, 250, True)],
    ]
    merged = merge_reports(turns)
    assert [node["node"] for node in merged] == ["a", "b"]
    a, b = merged
    assert (a["turns"], a["sent"], a["ok"], a["errors"]) == (2, 120, 118, 2)
    assert a["client_cpu_pct"] == 30.0  # the turn without a reading is left out
    assert a["offset_uncertainties_ns"] == [200, 250] and a["offset_suspect"]
    assert (b["sent"], b["client_cpu_pct"], b["offset_suspect"]) == (100, 40.0, False)


@pytest.mark.parametrize("text", ["local:0", "local:x", "local:99", "", "host 1:6379"])
def test_bad_cluster_specs_are_one_line_input_errors(text):
    with pytest.raises(InputError, match="--cluster"):
        ClusterSpec.parse(text)


def test_cluster_specs():
    assert ClusterSpec.parse("local:3").local_nodes == 3
    assert ClusterSpec.parse("10.0.0.5:6379").address == "10.0.0.5:6379"
    assert parse_resources("GPU=1, local_node_1=0.5") == {"GPU": 1.0, "local_node_1": 0.5}
    for bad in ("GPU", "GPU=0", "=1", "GPU=one", ","):
        with pytest.raises(InputError, match="--resources"):
            parse_resources(bad)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(InputError, match=r"distributed"):
        require_ray()


def test_resources_without_a_cluster_exits_2(write_scenario, tmp_path):
    path = write_scenario(hello_scenario(systems=["thrift"]))
    done = bench("run", str(path), "--resources", "GPU=1", "--results-dir", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --resources: only with --cluster (a node of which cluster?)"
    ]


@pytest.mark.parametrize(
    ("systems", "args", "reason"),
    [
        (
            ["thrift"],
            ["--server-resources", "GPU=1"],
            "error: --server-resources: only with --cluster (nodes of which cluster?)",
        ),
        (
            [{"name": "thrift", "node": {"resources": {"GPU": 1}}}],
            [],
            "error: {path}: systems.0.node: a server on a cluster node needs --cluster",
        ),
        (
            [{"name": "pipe", "node": {"resources": {"GPU": 1}}}],
            ["--cluster", "local:1"],
            "error: {path}: systems.0.node: pipe runs in the harness: "
            "it has no server to place on a node",
        ),
        (
            ["thrift"],
            ["--cluster", "local:1", "--server-resources", "GPU=1", "--resources", "GPU=1"],
            "error: --resources runs the whole scenario on one node: "
            "not with servers placed on nodes",
        ),
    ],
)
def test_servers_on_nodes_need_a_cluster_and_a_server(
    systems, args, reason, write_scenario, tmp_path
):
    """Checked before any cluster starts: each mistake is one line and exit 2."""
    path = write_scenario(hello_scenario(systems=systems))
    done = bench("run", str(path), *args, "--results-dir", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [reason.format(path=path)]
