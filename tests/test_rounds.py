"""Paired rounds on real in-process systems: the rotation, the precision stop, the seeds,
and a system's workload override."""

from __future__ import annotations

import pytest

from harness.errors import InputError
from harness.rounds import Contender, PointPlan, measure_rounds, rotation, turn_seed
from harness.scenario import Scenario
from tests.conftest import hello_scenario

pytestmark = pytest.mark.usefixtures("no_leaks")

FAST = {"clients": [1], "warmup_s": 0.02, "duration_s": 0.06, "min_duration_s": 0}


def test_rotation_moves_every_system_one_place_per_round():
    assert [rotation(3, r) for r in range(4)] == [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]
    assert rotation(1, 5) == [0] and rotation(0, 2) == []


def test_turn_seeds_differ_per_turn_and_per_run_and_repeat_for_the_same_run():
    seeds = {turn_seed(7, p, r, s) for p in range(3) for r in range(6) for s in range(4)}
    assert len(seeds) == 3 * 6 * 4
    assert turn_seed(7, 1, 2, 3) == turn_seed(7, 1, 2, 3) != turn_seed(8, 1, 2, 3)


def _contenders(make_scenario, labels: list[str], **load) -> tuple[Scenario, list[Contender]]:
    systems = [{"name": "pipe", "label": label} for label in labels]
    scenario = make_scenario(systems=systems, load={**FAST, **load})
    contenders = [Contender.create(scenario, spec) for spec in scenario.systems]
    for contender in contenders:
        contender.start(first=True)
    return scenario, contenders


def _measure(scenario: Scenario, contenders: list[Contender], budget_s=None) -> int:
    plan = PointPlan(scenario.load, 1, 0, run_seed=1, budget_s=budget_s)
    try:
        return measure_rounds(contenders, plan, lambda r: None, lambda t: None, lambda c: None)
    finally:
        for contender in contenders:
            contender.stop()


def test_each_round_runs_every_system_once_in_the_rotated_order(make_scenario):
    scenario, contenders = _contenders(make_scenario, ["a", "b", "c"], repeats=4, max_repeats=4)
    assert _measure(scenario, contenders) == 4
    for round_index in range(4):
        started = [c.runs[round_index].boundaries_ns[0] for c in contenders]
        order = sorted(range(3), key=started.__getitem__)
        assert order == rotation(3, round_index)
    # Rounds follow one another: every turn of round r ends before round r + 1 begins.
    for r in range(3):
        last = max(c.runs[r].boundaries_ns[-1] for c in contenders)
        assert last < min(c.runs[r + 1].boundaries_ns[0] for c in contenders)


@pytest.mark.parametrize(
    ("load", "budget_s", "rounds"),
    [
        ({"repeats": 6, "max_repeats": 9, "precision_pct": 1000}, None, 6),  # precise at once
        ({"repeats": 6, "max_repeats": 8, "precision_pct": 1e-6}, None, 8),  # never precise
        ({"repeats": 6, "max_repeats": 9, "precision_pct": 1e-6}, 1e-3, 6),  # budget spent
        ({"repeats": 2, "max_repeats": 2, "precision_pct": 1000}, None, 2),  # no interval
    ],
)
def test_rounds_stop_when_precise_at_the_maximum_or_out_of_budget(
    make_scenario, load, budget_s, rounds
):
    scenario, contenders = _contenders(make_scenario, ["a", "b"], **load)
    assert _measure(scenario, contenders, budget_s) == rounds
    assert all(sorted(c.runs) == list(range(rounds)) for c in contenders)


def test_a_system_overrides_workload_parameters_for_a_paired_variant(write_scenario):
    from harness.scenario import load_scenario

    systems = [
        {"name": "pipe"},
        {"name": "pipe", "label": "pipe-bytes", "workload": {"type": "bytes"}},
    ]
    scenario = load_scenario(write_scenario(hello_scenario(systems=systems)))
    plain, variant = (Contender.create(scenario, spec) for spec in scenario.systems)
    assert plain.workload.make_request().dtype.kind == "u"  # UINT8 codes
    assert variant.workload.make_request().dtype.kind == "O"  # one bytes element
    assert variant.scenario.workload.options == {"payload": "HelloWorld", "type": "bytes"}
    assert scenario.workload.options == {"payload": "HelloWorld"}  # the scenario's own

    bad = [{"name": "pipe"}, {"name": "pipe", "label": "b", "workload": {"tpye": "bytes"}}]
    with pytest.raises(InputError, match=r"systems\.1\.workload\.tpye"):
        load_scenario(write_scenario(hello_scenario(systems=bad), name="bad.yaml"))


def _wrapped(inner: BaseException) -> SystemError:
    """What C code makes of an exception raised under it (a Ray call, a Cython __new__)."""
    try:
        try:
            raise inner
        except BaseException:
            # C code sets the new error with the interruption still set: its context.
            raise SystemError("<built-in method __new__> returned a result with an exception set")  # noqa: B904
    except SystemError as exc:
        return exc


def test_an_interruption_wrapped_by_c_code_is_not_taken_for_a_failing_system(make_scenario):
    """Ctrl-C during a --cluster run came back as a SystemError: the system was failed, the
    run went on with the next one, and it never said "interrupted" nor exited 130."""
    _, (contender,) = _contenders(make_scenario, ["a"])
    try:
        with pytest.raises(KeyboardInterrupt):
            contender.fail(_wrapped(KeyboardInterrupt()))
        assert contender.failure is None
        reason = contender.fail(_wrapped(ConnectionResetError("peer gone")))
        assert reason.startswith("SystemError: ")  # a real failure stays one
    finally:
        contender.stop()
