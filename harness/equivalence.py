"""Output equivalence: before a system is measured, its reply must be the right one.

A benchmark that compares systems is only fair if they compute the same thing. So each
system answers one request first, and the reply is compared with the one the workload
expects, computed by the harness itself: byte for byte, or, for model outputs, same shape
and dtype with values within the workload's tolerance. The pure-RPC systems (``thrift``,
``triton-rpc``) must return the workload's prepared reply instead. A mismatch stops that
system with a message that says how the replies differ. A system running the user's own
backend computes what the harness cannot: it only has to answer.
"""

from __future__ import annotations

import numpy as np

from engines.workloads import Workload
from harness.errors import SystemFailure
from harness.scenario import SystemSpec
from harness.system import System

#: Expected replies by workload and request: a model is loaded once per run, not per system.
_expected: dict[tuple[str, str, bytes], np.ndarray] = {}


def mismatch(expected: np.ndarray, reply: np.ndarray, tolerance: float = 0.0) -> str | None:
    """How ``reply`` differs from ``expected``, or ``None`` if it does not.

    ``tolerance`` 0 asks for equal bytes; otherwise the largest difference may be up to
    ``tolerance`` times the expected reply's largest magnitude.
    """
    if not isinstance(reply, np.ndarray):
        return f"reply is a {type(reply).__name__}, not an array"
    if reply.dtype != expected.dtype or reply.shape != expected.shape:
        return (
            f"expected {expected.dtype} {list(expected.shape)}, "
            f"got {reply.dtype} {list(reply.shape)}"
        )
    if tolerance == 0 or expected.dtype.kind not in "fc":
        if np.array_equal(reply, expected):
            return None
        return f"values differ: expected {_preview(expected)}, got {_preview(reply)}"
    if not np.all(np.isfinite(reply)):
        return "reply holds NaN or infinity"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    worst = float(np.max(np.abs(reply.astype(np.float64) - expected))) if expected.size else 0.0
    if worst <= tolerance * max(scale, np.finfo(np.float32).tiny):
        return None
    return (
        f"largest difference {worst:.3g} exceeds {tolerance:g} x {scale:.3g} "
        f"(expected {_preview(expected)}, got {_preview(reply)})"
    )


def _preview(array: np.ndarray) -> str:
    flat = array.reshape(-1)
    if array.dtype == np.uint8:
        return repr(flat[:24].tobytes())
    items = ", ".join(repr(item) for item in flat[:4].tolist())
    return f"[{items}{', ...' if flat.size > 4 else ''}]"


def expected_reply(workload: Workload, workload_key: str, request: np.ndarray) -> np.ndarray:
    """The workload's expected reply, remembered for the next system of the same scenario."""
    content = repr(request.tolist()).encode() if request.dtype == object else request.tobytes()
    key = (workload_key, str(request.dtype), content)
    if key not in _expected:
        _expected.clear()  # one workload at a time: do not keep old models' replies around
        _expected[key] = workload.expected_reply(request)
    return _expected[key]


def check_equivalent(system: System, spec: SystemSpec, workload: Workload) -> None:
    """One request before measuring; raise :class:`SystemFailure` on a wrong reply."""
    request = workload.make_request()
    if not system.reply_known:
        client = system.client()
        try:
            client.call(request)
        finally:
            client.close()
        return
    if system.computes:
        spec_json = system.scenario.workload.model_dump_json()
        expected = expected_reply(workload, spec_json, request)
        what = "the workload's expected reply"
    else:
        expected = workload.reply_without_compute(request)
        what = "the workload's prepared (no-compute) reply"
    client = system.client()
    try:
        reply = client.call(request)
    finally:
        client.close()
    problem = mismatch(np.asarray(expected), reply, workload.tolerance)
    if problem:
        raise SystemFailure(f"{spec.column}: wrong reply, not equivalent to {what}: {problem}")
