"""Does a conclusion survive a re-run? Two runs of the same scenarios, back to back.

Runs ``scenarios/hello_world.yaml`` and ``scenarios/adaptive_batching.yaml`` twice with
``bench run`` (one process tree, nothing else changed), then compares the two runs:

- ``valid_share``: ✓ points / all points, both runs together;
- ``ratio_agreement``: share of system-to-baseline QPS ratios of run 2 that lie inside run
  1's 95 % interval or within ±10 % of run 1's ratio;
- ``verdict_agreement``: share of the seed conclusions these scenarios decide that read the
  same in both runs;
- ``minutes``: the wall time of both runs.

Prints a table, then as its last line one JSON object. Run it on a quiet machine:
``flock /tmp/bench.lock .venv/bin/python benchmarks/reproducibility.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.report.resultsets import latest_by_scenario  # noqa: E402
from harness.results import PointRecord  # noqa: E402
from harness.seed import CONCLUSIONS, Results  # noqa: E402

SCENARIOS = ("hello_world", "adaptive_batching")
#: A ratio of run 2 within this share of run 1's agrees even outside its interval.
AGREEMENT_BAND = 0.10


def run_once(folder: Path) -> Results:
    files = [str(ROOT / "scenarios" / f"{name}.yaml") for name in SCENARIOS]
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", *files, "--results-dir", str(folder)],
        cwd=ROOT,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return latest_by_scenario([folder])


def _records(results: Results) -> dict[tuple[str, str, float], PointRecord]:
    found = {}
    for name, result in results.items():
        for record in result.records:
            found[(name, record.label, record.point)] = record
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep both runs' result files here")
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pipebench-repro-") as tmp:
        folder = args.keep or Path(tmp)
        results_1 = run_once(folder / "run1")
        results_2 = run_once(folder / "run2")
        first, second = _records(results_1), _records(results_2)
    minutes = (time.perf_counter() - began) / 60
    every = list(first.values()) + list(second.values())
    valid = sum(r.valid for r in every)
    agreeing, compared = 0, 0
    print("| scenario | system | point | ratio run 1 [95 %] | ratio run 2 | agrees |")
    print("|---|---|---:|---|---:|---|")
    for key, one in first.items():
        two = second.get(key)
        r1, r2 = one.ratio, two.ratio if two else None
        if r1 is None or r2 is None or r1.baseline == one.label:
            continue
        interval = r1.qps_ci95 or [r1.qps, r1.qps]
        inside = interval[0] <= r2.qps <= interval[1]
        near = abs(r2.qps / r1.qps - 1) <= AGREEMENT_BAND if r1.qps else False
        compared += 1
        agreeing += inside or near
        print(
            f"| {key[0]} | {key[1]} | {key[2]:g} | {r1.qps:.3g} "
            f"[{interval[0]:.3g}, {interval[1]:.3g}] | {r2.qps:.3g} "
            f"| {'yes' if inside or near else 'NO'} |"
        )
    decided = same = 0
    print("\n| conclusion | run 1 | run 2 |")
    print("|---|---|---|")
    for conclusion in CONCLUSIONS:
        a, b = conclusion.check(results_1), conclusion.check(results_2)
        if a.status == "not measured" and b.status == "not measured":
            continue
        decided += 1
        same += a.status == b.status
        print(f"| {conclusion.statement[:70]} | {a.status} | {b.status} |")
    summary = {
        "valid_share": round(valid / len(every), 3) if every else 0.0,
        "valid_points": f"{valid}/{len(every)}",
        "ratio_agreement": round(agreeing / compared, 3) if compared else 0.0,
        "verdict_agreement": round(same / decided, 3) if decided else 0.0,
        "minutes": round(minutes, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
