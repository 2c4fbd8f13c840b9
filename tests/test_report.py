"""``bench report``: pages, plots, the seed report with its checked conclusions, and the HTML
page as a real browser (headless Chromium) renders it; plus ``bench list`` and ``bench env``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness import histogram
from harness.report.render import render_reports
from harness.report.resultsets import latest_by_scenario
from harness.report.seedpage import seed_page
from harness.seed import CONCLUSIONS, TABLES, Outcome, SystemMatch
from tests.cli_helpers import bench
from tests.conftest import ROOT, hello_scenario
from tests.result_files import record, write_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ADAPTIVE_SYSTEMS = [
    {"name": "pipe", "options": {"policy": "adaptive"}},
    {"name": "pipe", "label": "pipe-v0", "options": {"policy": "torchpipe-v0"}},
    {"name": "triton"},
]


def latency(p50: float) -> dict[str, float]:
    return {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 2, "max": p50 * 3, "mean": p50}


def adaptive_records(v0_two_clients_ms: float = 10.4) -> list[dict[str, Any]]:
    """The batching table's shape: pipe never waits, v0 waits at 2 clients, Triton at 1 and 2."""
    p50 = {
        "pipe": {1: 0.05, 2: 0.09, 4: 0.3, 10: 0.7},
        "pipe-v0": {1: 0.06, 2: v0_two_clients_ms, 4: 0.35, 10: 0.8},
        "triton": {1: 10.8, 2: 10.9, 4: 0.9, 10: 1.6},
    }
    records = []
    for label, by_clients in p50.items():
        system = "triton" if label == "triton" else "pipe"
        for clients, ms in by_clients.items():
            qps = [clients / ms * 1000 * f for f in (0.98, 1.0, 1.02)]
            batches = {"1": 50, str(min(clients, 4)): 400}
            records.append(
                record(label, clients, qps, system=system, latency_ms=latency(ms))
                | {"batch_sizes": batches}
            )
    spread = np.random.default_rng(0).lognormal(np.log(50_000), 0.5, 1000).astype(np.int64)
    records[0]["histogram"] = histogram.encode(histogram.of_latencies(spread, 30.0))
    records[3] |= {"valid": False, "stable": False, "invalid_reasons": ["unstable"]}
    records[-1] = record("triton", 10, [0.0]) | {
        "system": "triton",
        "failure": "triton: server exited with code -9",
        "latency_ms": {},
        "ok": 0,
    }
    return records


def write_adaptive(folder: Path, records: list[dict[str, Any]], started: str) -> Path:
    path = write_result(
        folder / f"adaptive_batching-{started[:10]}.json",
        records,
        name="adaptive_batching",
        systems=ADAPTIVE_SYSTEMS,
        seed_table="adaptive-batching",
        serving={"instances": 1, "batching_timeout_ms": 10, "max_batch": 4},
    )
    document = json.loads(path.read_text())
    document["started_at"] = started
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    older = [r | {"qps": 1.0} for r in adaptive_records()]
    write_adaptive(results, older, "2026-01-01T00:00:00+00:00")
    write_adaptive(results, adaptive_records(), "2026-02-01T00:00:00+00:00")
    out = tmp_path / "reports"
    render_reports([results], out)
    return out


def test_a_scenario_page_has_the_table_marks_plots_and_environment(rendered):
    page = (rendered / "adaptive_batching.md").read_text()
    newest = adaptive_records()
    assert f"QPS {newest[1]['qps']:.0f} " in page  # the newer of the two files
    assert "| clients | pipe | pipe-v0 | triton |" in page
    assert "✗ unstable" in page
    assert "failed: triton: server exited with code -9" in page
    assert "| git | 0123abcd |" in page and "| cores | 2 |" in page
    images = re.findall(r"!\[[^]]*\]\((img/[^)]+)\)", page)
    assert [Path(i).name for i in images] == [
        "adaptive_batching-qps.png",
        "adaptive_batching-latency.png",
        "adaptive_batching-cdf.png",
        "adaptive_batching-batches.png",
    ]
    for image in images:
        assert (rendered / image).read_bytes().startswith(PNG_MAGIC)
    index = (rendered / "index.md").read_text()
    assert "[adaptive_batching](adaptive_batching.md)" in index
    assert "| 2 of 12 |" in index  # the unstable point and the failed one


def test_plots_are_skipped_when_there_is_nothing_to_draw(tmp_path):
    """Batch size 1 everywhere: no batch plot; the CDF comes from the quantiles."""
    write_result(tmp_path / "r.json", [record("pipe", 1, [100.0]), record("pipe", 10, [300.0])])
    render_reports([tmp_path / "r.json"], tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "img").iterdir()) == [
        "demo-cdf.png",
        "demo-latency.png",
        "demo-qps.png",
    ]
    failed = record("pipe", 1, [0.0]) | {"failure": "pipe: died", "ok": 0, "latency_ms": {}}
    write_result(tmp_path / "f.json", [failed], name="dead")
    render_reports([tmp_path / "f.json"], tmp_path / "dead")
    assert not list((tmp_path / "dead" / "img").iterdir())
    assert "failed: pipe: died" in (tmp_path / "dead" / "dead.md").read_text()


def test_the_seed_report_sets_our_numbers_beside_the_seeds(rendered):
    report = (rendered / "report.md").read_text()
    assert "| torchpipe | pipe-v0 | 0.25 | 0.06 | 10.25 | 10.4 | 0.34 | 0.35 | 0.82 | 0.8 |" in (
        report
    )
    assert "| triton | triton | 10.5 | 10.8 | 10.57 | 10.9 | 0.5 | 0.9 | 0.97 | failed |" in report
    assert "| - | pipe | - | 0.05 | - | 0.09 | - | 0.3 | - | 0.7 ⚠ |" in report
    assert "✓ holds: With 1 client, adaptive batching does not wait" in report
    assert "✓ holds: With 1 client, Triton's dynamic batcher waits" in report
    assert "✓ holds: pipe with policy torchpipe-v0 reproduces the seed's 2-client wait" in report
    assert "○ not measured: On GIL-bound Python work" in report
    for table in TABLES:
        assert table.settings in report


def _results_from_seed(tmp_path: Path) -> dict:
    """The seed's own numbers as result files: its conclusions must hold on them."""
    by_key: dict[str, tuple[list[dict], list[dict]]] = {}
    for table in TABLES:
        systems, records = by_key.setdefault(table.key, ([], []))
        for column in table.columns:
            match: SystemMatch | None = column.ours
            if match is None or not column.values:
                continue
            label = column.seed
            if label not in [s["label"] for s in systems]:
                systems.append({"name": match.name, "label": label, "options": match.options})
            for clients, value in column.values.items():
                if table.metric == "qps":
                    records.append(record(label, clients, [value], system=match.name))
                else:
                    records.append(
                        record(label, clients, [1.0], system=match.name, latency_ms=latency(value))
                    )
    for key, (systems, records) in by_key.items():
        if records:
            timeout = 10 if key == "adaptive-batching" else 0
            write_result(
                tmp_path / f"{key}.json",
                records,
                name=key,
                systems=systems,
                serving={"instances": 1, "batching_timeout_ms": timeout, "max_batch": 4},
            )
    return latest_by_scenario([tmp_path])


def test_the_seeds_conclusions_hold_on_the_seeds_own_numbers(tmp_path):
    results = _results_from_seed(tmp_path)
    outcomes = {c.statement: c.check(results) for c in CONCLUSIONS}
    bytes_check = next(s for s in outcomes if "BYTES" in s)
    assert outcomes.pop(bytes_check).status == "not measured"  # the seed gives no numbers
    assert {s: o.status for s, o in outcomes.items()} == dict.fromkeys(outcomes, "holds")
    assert len(outcomes) == 6


def test_a_contradicting_result_fails_its_conclusion_with_the_numbers(tmp_path):
    write_adaptive(tmp_path, adaptive_records(v0_two_clients_ms=0.3), "2026-01-01T00:00:00")
    results = latest_by_scenario([tmp_path])
    v0 = next(c for c in CONCLUSIONS if "torchpipe-v0" in c.statement)
    assert v0.check(results) == Outcome(
        "fails",
        "pipe-v0 TP50 0.06 (no interval) ms at 1 client, 0.3 (no interval) ms at 2; timeout 10 ms",
    )
    assert "✗ fails: pipe with policy torchpipe-v0" in seed_page(results)


def test_a_conclusion_whose_interval_straddles_its_margin_is_inconclusive(tmp_path):
    """Paired rounds of triton and triton-bytes: 1.02x to 1.10x straddles the 1.05 margin;
    a clear 1.3x holds, and a ratio wholly under the margin fails."""
    from tests.result_files import record, write_result

    systems = [
        {"name": "triton", "label": "triton"},
        {"name": "triton", "label": "triton-bytes", "workload": {"type": "bytes"}},
    ]

    def run(factors: list[float]) -> dict:
        uint8 = [1000.0 * (1 + 0.01 * i) for i in range(6)]
        records = []
        for clients in (1, 10):
            records.append(record("triton", clients, uint8, system="triton"))
            rounds = [q / f for q, f in zip(uint8, factors, strict=True)]
            records.append(record("triton-bytes", clients, rounds, system="triton"))
        write_result(tmp_path / "hello_world.json", records, name="hello_world", systems=systems)
        return latest_by_scenario([tmp_path])

    bytes_check = next(c for c in CONCLUSIONS if "BYTES" in c.statement)
    tie = bytes_check.check(run([1.02, 1.04, 1.06, 1.08, 1.10, 1.03]))
    assert tie.status == "inconclusive" and "tie within ±" in tie.evidence
    assert bytes_check.check(run([1.3] * 6)).status == "holds"
    assert bytes_check.check(run([0.98, 1.0, 1.01, 0.99, 1.02, 1.0])).status == "fails"


# -- the HTML page in a real browser ---------------------------------------------------------

#: Run in the page after load: per image, its decoded width and the share of its pixels with
#: ink (drawn on a canvas, so a truncated or broken image counts as blank), and every cell.
#: Synchronous on purpose: "load" fires once every (data: URI) image has loaded, and an
#: awaited decode could outlast --dump-dom's virtual time on a busy machine.
PROBE = """<script>
window.addEventListener("load", () => {
  const ink = (img) => {
    if (!img.complete || img.naturalWidth === 0) return -1;
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    for (let i = 0; i < rgba.length; i += 4) {
      if (rgba[i + 3] > 0 && rgba[i] + rgba[i + 1] + rgba[i + 2] < 600) inked++;
    }
    return inked / (canvas.width * canvas.height);
  };
  const images = [...document.images];
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    widths: images.map((img) => img.naturalWidth),
    ink: images.map(ink),
    cells: [...document.querySelectorAll("td")].map((td) => td.textContent),
  });
  document.body.appendChild(probe);
});
</script>"""


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is needed: scripts/bootstrap.sh test installs it"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [binary, *flags, *args], capture_output=True, text=True, timeout=60, check=True
    )


def test_the_html_page_is_self_contained(rendered):
    page = (rendered / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(https?:)?//', page)
    assert 'href="#adaptive_batching"' in page and '.md"' not in page


def test_the_html_page_renders_tables_and_images_in_headless_chromium(rendered, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text((rendered / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(
        tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()
    ).stdout
    found = re.search(r'<pre id="probe">([^<]*)</pre>', dom)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(probe["widths"]) == 4 and min(probe["widths"]) >= 400
    assert min(probe["ink"]) > 0.01, probe["ink"]  # every plot decoded whole and drawn
    assert "0.25" in probe["cells"] and "10.25" in probe["cells"]  # seed numbers
    assert any(cell.startswith("QPS ") for cell in probe["cells"])  # the scenario table

    shot = tmp_path / "shot.png"
    chromium(
        tmp_path / "profile",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        (rendered / "report.html").as_uri(),
    )
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2400, 1280)
    assert (pixels < 128).mean() > 0.01, "the screenshot is blank"


# -- the command line ------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leaks")
def test_cli_renders_a_real_runs_results(write_scenario, tmp_path):
    """A quick real run of two systems with ``--report``, then ``bench report`` on its results."""
    load = {"clients": [1], "warmup_s": 0.1, "duration_s": 0.3}
    systems = ["pipe", "thrift"]
    scenario = write_scenario(hello_scenario(name="hello_world", systems=systems, load=load))
    results, out = tmp_path / "results", tmp_path / "reports"
    done = bench(
        "run", str(scenario), "--quick", "--results-dir", str(results), "--report", str(out)
    )
    assert done.returncode == 0, done.stderr
    (saved,) = results.glob("*.json")
    page = (out / "hello_world.md").read_text()
    for entry in json.loads(saved.read_text())["records"]:
        assert f"QPS {entry['qps']:.0f}" in page
    assert "| thrift | thrift | 14890 |" in (out / "report.md").read_text()
    done = bench("report", str(results), "--out", str(tmp_path / "again"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again" / "hello_world.md").read_text() == page


def test_cli_report_bad_input_is_one_line(tmp_path):
    done = bench("report", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'missing'}: no such file or folder"
    (tmp_path / "broken.json").write_text('{"records": []}')
    done = bench("report", str(tmp_path / "broken.json"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "scenario.name: missing" in done.stderr and "Traceback" not in done.stderr


def test_cli_list_names_every_scenario_with_its_description():
    done = bench("list")
    assert done.returncode == 0, done.stderr
    for path in (ROOT / "scenarios").glob("*.yaml"):
        assert f"(scenarios/{path.name})" in done.stdout
    assert "hello_world" in done.stdout and "RPC and serving-path ceiling" in done.stdout


def test_cli_env_reports_what_is_installed():
    done = bench("env")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "yes" in lines["tritonserver"] and "tritonserver" in lines["tritonserver"]
    for name in ("perf_analyzer", "onnxruntime", "torch", "GPU", "TensorRT", "opencv"):
        assert name in lines


def test_a_time_series_page_per_point_and_a_percentile_plot_from_the_histogram(tmp_path):
    """Windows in the file: a page per load point with QPS and TP99 over time."""
    windows = [
        {
            "repeat": repeat,
            "start_s": 5.0 * repeat + index,
            "duration_s": 1.0,
            "qps": 900.0 + 40 * index,
            "p50_ms": 1.0,
            "p99_ms": 3.0 - 0.5 * index,
            "errors": 0,
            "measured": index > 0,
        }
        for repeat in range(2)
        for index in range(4)
    ]
    spread = np.random.default_rng(1).lognormal(np.log(1e6), 0.4, 4000).astype(np.int64)
    encoded = histogram.encode(histogram.of_latencies(spread, 30.0))
    records = [
        record(label, 4, [1000.0, 1010.0]) | {"windows": windows, "histogram": encoded}
        for label in ("pipe", "thrift")
    ]
    write_result(tmp_path / "r.json", records, name="series")
    written = render_reports([tmp_path / "r.json"], tmp_path / "out")
    page = tmp_path / "out" / "series-clients-4.md"
    assert page in written
    text = page.read_text()
    assert "![QPS and TP99 per window](img/series-clients-4.png)" in text
    assert "| thrift | 1 | 1010 |" in text  # each repeat's own values
    assert (tmp_path / "out" / "img" / "series-clients-4.png").read_bytes().startswith(PNG_MAGIC)
    assert "[4 clients](series-clients-4.md)" in (tmp_path / "out" / "series.md").read_text()
    assert (tmp_path / "out" / "img" / "series-cdf.png").read_bytes().startswith(PNG_MAGIC)
    assert 'id="series-clients-4"' in (tmp_path / "out" / "report.html").read_text()
