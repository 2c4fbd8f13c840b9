"""Other work on the machine: a real CPU burner outside the harness's process tree is seen,
its turns are taken again and the record says so; the harness's own children are not
"others", even after they exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from harness.interference import machine_busy_s, machine_cpus, others_cpu_s, own_cpu_s
from harness.rounds import Contender, PointPlan, measure_rounds, point_records

pytestmark = pytest.mark.usefixtures("no_leaks")

#: Forks a spinning grandchild, prints its pid and exits: the burner is reparented away
#: from this process tree, like any unrelated program on the machine.
_DETACHED_BURNER = """
import os, sys
pid = os.fork()
if pid:
    print(pid, flush=True)
    os._exit(0)
os.setsid()
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)  # let the caller's pipe reach end of file
os.dup2(devnull, 2)
while True:
    pass
"""


@pytest.fixture
def outside_burner() -> Iterator[int]:
    out = subprocess.run(
        [sys.executable, "-c", _DETACHED_BURNER], capture_output=True, text=True, check=True
    )
    pid = int(out.stdout)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_own_cpu_counts_children_that_have_exited():
    before = own_cpu_s()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()\nwhile time.process_time()-t<0.5: pass",
        ],
        check=True,
    )
    assert own_cpu_s() - before >= 0.4  # the reaped child's CPU stays ours


def test_own_work_is_not_counted_as_others():
    """Spinning here moves the machine's busy time and our own alike: not others'. (Others
    may run meanwhile on a busy machine, so only an upper bound is asserted.)"""
    busy, others = machine_busy_s(), others_cpu_s()
    _spin(1.0)
    used = machine_busy_s() - busy
    assert used >= 0.8
    assert others_cpu_s() - others < used - 0.5


def test_a_burner_outside_the_tree_is_others(outside_burner):
    others = others_cpu_s()
    time.sleep(1.5)
    assert others_cpu_s() - others >= 0.9  # it spins a whole CPU; scheduling may trim it


def test_disturbed_turns_are_taken_again_and_the_record_says_so(make_scenario, outside_burner):
    share = 100 / machine_cpus()  # the burner takes one CPU of the machine
    scenario = make_scenario(
        systems=["pipe"],
        load={
            "clients": [1],
            "warmup_s": 0.05,
            "duration_s": 0.3,
            "repeats": 2,
            "max_repeats": 2,
            "min_duration_s": 0,
            "others_max_pct": share / 4,
            "retakes": 1,
        },
    )
    contender = Contender.create(scenario, scenario.systems[0])
    contender.start(first=True)
    try:
        plan = PointPlan(scenario.load, 1, 0, run_seed=1, budget_s=None)
        measure_rounds([contender], plan, lambda r: None, lambda t: None, lambda c: None)
    finally:
        contender.stop()
    (record,) = point_records([contender], scenario.load, 1, {}, "pipe")
    assert record.retaken_turns == 2  # each of the 2 turns once, the most allowed
    assert record.others_cpu_pct is not None and record.others_cpu_pct >= share / 2
    assert "imprecise" in record.invalid_reasons and "busy" in record.invalid_reasons
