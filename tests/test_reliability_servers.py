"""Servers the harness starts: their configuration, their failures, their temp folders.

A server's configuration travels on its stdin, so a large payload fits (one argv string
is limited to 128 KiB); a server that fails says why in its own words (not tritonserver's
option table) and its whole log is kept beside the result; a binary that cannot run says
why and leaves nothing; Ctrl-C right after a Triton work folder appears leaves nothing.
"""

from __future__ import annotations

import glob
import json
import signal
import subprocess
import time

import numpy as np
import pytest

from engines.workloads import create_workload
from harness.errors import SystemFailure
from harness.process import work_dir
from harness.system import create_system
from tests.cli_helpers import BENCH, RunWatcher, bench, only_result
from tests.conftest import ROOT, hello_scenario
from tests.test_reliability_teardown import short_load

pytestmark = pytest.mark.usefixtures("no_leaks")
BIG = "x" * 200_000


@pytest.mark.parametrize("name", ["thrift", "pipe+thrift", "triton"])
def test_a_200_kb_payload_reaches_the_server(name, make_scenario):
    scenario = make_scenario(systems=[name], workload={"name": "echo", "payload": BIG})
    request = create_workload("echo", {"payload": BIG}).make_request()
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(60)
        client = system.client()
        try:
            reply = client.call(request)
        finally:
            client.close()
    assert np.array_equal(np.asarray(reply), request)


def test_a_triton_binary_with_a_bad_interpreter_says_so_and_leaves_nothing(make_scenario, tmp_path):
    binary = tmp_path / "tritonserver"
    binary.write_text("#!/nonexistent/python3\nprint('never')\n")
    binary.chmod(0o755)
    scenario = make_scenario(systems=[{"name": "triton", "options": {"binary": str(binary)}}])
    before = set(work_dir().iterdir())
    system = create_system(scenario.systems[0], scenario)
    with system, pytest.raises(SystemFailure) as raised:
        system.start()
    assert str(raised.value) == (
        f"triton: cannot start {binary}: its interpreter line '#!/nonexistent/python3' "
        "names a program that does not exist"
    )
    assert set(work_dir().iterdir()) == before  # no work folder, no log


#: Says what is wrong, then prints an option table as tritonserver does, and fails.
FAILING_TRITON = """#!/bin/sh
echo 'I1201 12:00:00.000001 1 server.cc:1] "starting"'
echo 'E1201 12:00:00.000002 1 model_lifecycle.cc:1] "failed to load pipebench: the real cause"'
echo '+--------------+-------+'
for i in $(seq 1 60); do echo "| option_$i | value |"; done
echo '+--------------+-------+'
for i in $(seq 1 20); do echo "I1201 12:00:01.000000 1 server.cc:2] unloading $i"; done
echo 'error: creating server: Internal - failed to load all models'
exit 1
"""


def test_a_failing_server_shows_its_own_error_and_its_log_is_kept(write_scenario, tmp_path):
    binary = tmp_path / "tritonserver"
    binary.write_text(FAILING_TRITON)
    binary.chmod(0o755)
    triton = {"name": "triton", "options": {"binary": str(binary)}}
    path = write_scenario(hello_scenario(systems=[triton, "pipe"], load=short_load(1)))
    results = tmp_path / "r"
    done = bench("run", str(path), "--results-dir", str(results), timeout=300)
    assert done.returncode == 1, done.stderr
    (result,) = results.glob("*.json")
    kept = result.with_name(f"{result.stem}.triton.log")
    failure = only_result(results)["records"][0]["failure"]
    unloading = [f"I1201 12:00:01.000000 1 server.cc:2] unloading {i}" for i in range(7, 21)]
    assert failure.splitlines() == [  # the error line first, then the last 15 (no table)
        "triton: exited with code 1 before ready to serve; last lines of its log:",
        'E1201 12:00:00.000002 1 model_lifecycle.cc:1] "failed to load pipebench: the real cause"',
        "...",
        *unloading,
        "error: creating server: Internal - failed to load all models",
        f"whole log: {kept}",
    ]
    assert kept.read_text().count("| option_") == 60
    assert kept.stat().st_mode & 0o777 == 0o644


def test_ctrl_c_right_after_a_triton_work_folder_appears_leaves_nothing(write_scenario):
    path = write_scenario(hello_scenario(systems=["triton"], load=short_load(1)))
    for attempt in range(6):
        run = subprocess.Popen(
            [*BENCH, "run", str(path), "--results-dir", str(path.parent / "r")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        watcher = RunWatcher(run.pid)
        pattern = f"/tmp/pipebench-run-{run.pid}-*/pipebench-triton-*"
        try:
            while not glob.glob(pattern):  # the run's own event: its Triton work folder
                assert run.poll() is None, run.communicate()
                time.sleep(0.001)
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=120)
        finally:
            run.kill()
            run.wait()
        assert run.returncode == 130, f"attempt {attempt}: {stderr}"
        assert stderr.strip().splitlines()[-1].startswith("interrupted: servers stopped, ")
        watcher.assert_nothing_left(within=20)
        for saved in (path.parent / "r").glob("*.json"):
            assert json.loads(saved.read_text())["complete"] is False
