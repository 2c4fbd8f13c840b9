"""Result files are never lost or overwritten: concurrent runs, a results folder that fails.

Two runs of one scenario started in the same second each get their own file, and each
prints the path it wrote; a results folder that disappears mid-run does not stop any
system, and the records are saved in a fallback folder (said in one line, exit code 3).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from harness.results import read_result
from harness.storage import ResultStore, interruptions_deferred, write_atomic
from tests.cli_helpers import BENCH, RunWatcher, bench, read_until
from tests.conftest import ROOT, hello_scenario
from tests.result_files import record, write_result
from tests.test_reliability_teardown import short_load

pytestmark = pytest.mark.usefixtures("no_leaks")

#: Each writer waits for the start file, then saves its own document under one stem.
RACER = """
import os, sys, time
from pathlib import Path
from harness.storage import ResultStore

folder, start, index = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
while not start.exists():
    time.sleep(0.001)
store = ResultStore(folder, "demo-20260101-120000")
store.save({"run": index, "step": 1})
store.finish({"run": index, "step": 2})
print(store.path, flush=True)
"""


def test_runs_racing_for_one_name_each_get_their_own_file(tmp_path):
    start = tmp_path / "start"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(start), str(index)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(4)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    start.touch()  # all four write at once
    printed = {}
    for index, racer in enumerate(racers):
        out, _ = racer.communicate(timeout=120)
        assert racer.returncode == 0
        printed[index] = out.strip()
    assert len(set(printed.values())) == 4, printed
    for index, path in printed.items():
        assert json.loads(Path(path).read_text()) == {"run": index, "step": 2}
    names = {p.name for p in tmp_path.glob("*.json")}
    assert names == {f"demo-20260101-120000{n}.json" for n in ("", "-2", "-3", "-4")}
    assert not list(tmp_path.glob(".*.tmp"))


def test_result_files_are_readable_by_everyone(tmp_path):
    store = ResultStore(tmp_path, "demo")
    store.finish({"complete": True})
    write_atomic(tmp_path / "other.json", {})
    for path in (tmp_path / "demo.json", tmp_path / "other.json"):
        assert path.stat().st_mode & 0o777 == 0o644


def test_when_the_fallback_fails_too_the_outcome_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = ResultStore(blocker, "demo", fallback=blocker / "fallback")
    store.finish({"complete": True})
    assert store.path is None
    assert store.outcome() == (
        f"results: not saved ({blocker}: Not a directory; fallback {blocker}/fallback: "
        "Not a directory)"
    )


def test_the_printed_path_is_the_path_written(write_scenario, tmp_path):
    """Another run's files hold every name this run could pick in the next two minutes."""
    results = tmp_path / "results"
    results.mkdir()
    now = datetime.now()
    others = [
        results / f"test_hello-{(now + timedelta(seconds=s)):%Y%m%d-%H%M%S}.json"
        for s in range(-2, 120)
    ]
    for other in others:
        other.write_text('{"another": "run"}')
    path = write_scenario(hello_scenario(systems=["pipe"], load=short_load(1)))
    done = bench("run", str(path), "--results-dir", str(results), timeout=300)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("results: ")]
    written = results / line.removeprefix("results: ")
    assert written.name.endswith("-2.json") and written not in others
    assert json.loads(written.read_text())["records"][0]["label"] == "pipe"
    assert all(other.read_text() == '{"another": "run"}' for other in others)


def test_a_results_folder_lost_mid_run_runs_every_system_and_saves_elsewhere(
    write_scenario, tmp_path
):
    results, tmp = tmp_path / "results", tmp_path / "tmp"
    tmp.mkdir()
    scenario = hello_scenario(
        systems=["pipe", {"name": "pipe", "label": "pipe2"}, "thrift"],
        load=short_load(1, duration_s=2),
    )
    run = subprocess.Popen(
        [*BENCH, "run", str(write_scenario(scenario)), "--results-dir", str(results)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    try:
        before = read_until(run, "starting pipe2")  # pipe's records are saved by now
        assert len(list(results.glob("*.json"))) == 1
        shutil.rmtree(results)
        results.write_text("not a folder any more")  # even root cannot write into it now
        out, after = run.communicate(timeout=300)
    finally:
        run.kill()
        run.wait()
    stderr = before + after
    assert run.returncode == 3, stderr
    assert "Traceback" not in stderr
    (fallback,) = (tmp / "pipebench-results").glob("*.json")
    document = json.loads(fallback.read_text())
    assert document["complete"] is True
    assert [r["label"] for r in document["records"]] == ["pipe", "pipe2", "thrift"]
    assert all(r["failure"] is None and r["ok"] > 0 for r in document["records"])
    assert "| clients | pipe | pipe2 | thrift |" in out  # the table is printed
    warned = [line for line in stderr.splitlines() if "cannot save results" in line]
    assert len(warned) == 1, stderr  # said once, not at every save
    final = stderr.strip().splitlines()[-1]
    assert final.startswith(f"error: results: not saved in {results} (")
    assert final.endswith(f"; saved to {fallback}")


def test_a_killed_run_leaves_a_complete_document_not_half_a_file(write_scenario, tmp_path):
    """The file is claimed at the start with a complete (empty) document."""
    scenario = hello_scenario(systems=["pipe"], load=short_load(1, duration_s=30))
    run = subprocess.Popen(
        [*BENCH, "run", str(write_scenario(scenario)), "--results-dir", str(tmp_path / "r")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = RunWatcher(run.pid)
    read_until(run, "client ceiling")
    run.kill()
    run.communicate(timeout=60)
    watcher.assert_nothing_left(within=10)
    (saved,) = (tmp_path / "r").glob("*.json")
    assert json.loads(saved.read_text())["complete"] is False


def test_a_ctrl_c_while_a_document_is_serialised_is_acted_on_after_it(tmp_path):
    """pydantic turns an interruption raised inside its serialiser into a serialisation
    error (a traceback and exit 1 instead of exit 130, seen under load): the runner
    serialises with interruptions held, and the held one is raised right after."""
    result = read_result(write_result(tmp_path / "r.json", [record("pipe", 1, [100.0])]))
    documents = []
    with pytest.raises(KeyboardInterrupt), interruptions_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler has run by now: it only took note
        documents.append(result.to_json())
    assert len(documents) == 1 and documents[0]["records"][0]["label"] == "pipe"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
