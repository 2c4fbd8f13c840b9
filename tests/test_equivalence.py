"""Output equivalence: a system that answers wrongly is stopped before it is measured."""

from __future__ import annotations

import numpy as np
import pytest

from engines.pipe.system import PipeSystem
from harness import runner
from harness.equivalence import mismatch
from harness.scenario import load_scenario
from harness.storage import ResultStore
from harness.system import REGISTRY
from tests.conftest import hello_scenario


class WrongEchoSystem(PipeSystem):
    """The real pipe engine behind a client that flips the last byte of every reply."""

    def client(self):  # type: ignore[override]
        inner = super().client()

        class Flipping:
            def call(self, request: np.ndarray) -> np.ndarray:
                reply = np.array(inner.call(request), copy=True)
                reply[-1] ^= 1
                return reply

            def close(self) -> None:
                inner.close()

        return Flipping()


def test_a_wrong_answer_stops_that_system_and_only_that_one(monkeypatch, write_scenario, tmp_path):
    monkeypatch.setitem(REGISTRY, "wrong-echo", "tests.test_equivalence:WrongEchoSystem")
    data = hello_scenario(systems=["wrong-echo", "pipe"])
    path = write_scenario(data)
    scenario = load_scenario(path)
    result = runner.run_scenario(
        scenario,
        path,
        ResultStore(tmp_path, "result"),
        runner.RunOptions(warmup_s=0.05, duration_s=0.3, repeats=1, max_repeats=1),
    )
    wrong = [record for record in result.records if record.label == "wrong-echo"]
    right = [record for record in result.records if record.label == "pipe"]
    assert wrong and all(record.failure for record in wrong)
    assert all(record.ok == 0 for record in wrong), "a wrong system must not be measured"
    message = wrong[0].failure
    assert "wrong-echo: wrong reply" in message
    assert "b'HelloWorld'" in message and "b'HelloWorle'" in message
    assert right and all(not record.failure and record.qps > 0 for record in right)


def test_equal_bytes_match_and_any_difference_is_named():
    hello = np.frombuffer(b"HelloWorld", dtype=np.uint8)
    assert mismatch(hello, hello.copy()) is None
    assert "values differ" in mismatch(hello, hello[::-1].copy())
    assert "expected uint8 [10], got int64 [10]" in mismatch(hello, hello.astype(np.int64))
    assert "got uint8 [9]" in mismatch(hello, hello[:9])
    assert "not an array" in mismatch(hello, b"HelloWorld")  # type: ignore[arg-type]


def test_strings_compare_element_by_element():
    expected = np.array([b"HelloWorld"], dtype=object)
    assert mismatch(expected, np.array([b"HelloWorld"], dtype=object)) is None
    assert "values differ" in mismatch(expected, np.array([b"HelloWorlD"], dtype=object))


@pytest.mark.parametrize(
    ("noise", "ok"), [(0.0, True), (1e-5, True), (9e-4, True), (2e-3, False), (1.0, False)]
)
def test_model_outputs_may_differ_within_the_tolerance_only(noise, ok):
    expected = np.linspace(-2, 2, 1000, dtype=np.float32)
    reply = expected + np.float32(noise * 2)  # noise relative to the largest magnitude (2)
    problem = mismatch(expected, reply, tolerance=1e-3)
    assert (problem is None) == ok, problem
    if not ok:
        assert "largest difference" in problem


def test_tolerance_does_not_excuse_nan_or_exact_dtypes():
    expected = np.ones(4, dtype=np.float32)
    assert "NaN" in mismatch(expected, np.array([1, 1, np.nan, 1], dtype=np.float32), 1e-3)
    ints = np.arange(4, dtype=np.int64)
    assert mismatch(ints, ints + 1, tolerance=0.5) is not None  # integers are always exact
