"""Output equivalence: before a system is measured, its reply must be the right one.

A benchmark that compares systems is only fair if they compute the same thing. So each
system answers the workload's requests first, and each reply is compared with the one the
workload expects, computed by the harness itself: byte for byte, or, for model outputs,
same shape and dtype with values within the workload's tolerance (named tensors: the same
names, each compared so). The pure-RPC systems (``thrift``, ``triton-rpc``) must return the
workload's prepared reply instead. A mismatch stops that system with a message that says
how the replies differ.

A system whose reply the harness cannot compute (the user's own backend) is compared with
the other such systems measuring the same workload in the run: the first one's replies are
the reference. Every system's record keeps how it was checked and a digest of its replies
(sha256 of their canonical bytes), so runs and systems can be compared later.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np

from engines.workloads import Workload
from harness.errors import SystemFailure
from harness.scenario import SystemSpec
from harness.system import System

#: Expected replies by workload and request: a model is loaded once per run, not per system.
_expected: dict[tuple[str, str], Any] = {}


def digest(value: Any) -> str:
    """sha256 of a request's or reply's canonical bytes: for each tensor (by name, sorted,
    for named tensors) its name, dtype, shape and C-order data (strings: length + bytes)."""
    sha = hashlib.sha256()
    named = sorted(value.items()) if isinstance(value, dict) else [("", value)]
    for name, item in named:
        array = np.asarray(item)
        sha.update(f"{name}|{array.dtype.str}|{list(array.shape)}|".encode())
        if array.dtype.hasobject:
            for element in array.reshape(-1):
                data = bytes(element)
                sha.update(struct.pack("<Q", len(data)) + data)
        else:
            sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()


def mismatch(expected: Any, reply: Any, tolerance: float = 0.0) -> str | None:
    """How ``reply`` differs from ``expected``, or ``None`` if it does not.

    ``tolerance`` 0 asks for equal bytes; otherwise the largest difference may be up to
    ``tolerance`` times the expected reply's largest magnitude. Named tensors must have
    the same names, and each is compared so.
    """
    if isinstance(expected, dict):
        if not isinstance(reply, dict):
            return f"reply is a {type(reply).__name__}, not named tensors"
        if set(reply) != set(expected):
            return f"expected tensors {sorted(expected)}, got {sorted(reply)}"
        for name in sorted(expected):
            if problem := mismatch(np.asarray(expected[name]), reply[name], tolerance):
                return f"{name}: {problem}"
        return None
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


def expected_reply(workload: Workload, workload_key: str, request: Any) -> Any:
    """The workload's expected reply, remembered for the next system of the same scenario."""
    key = (workload_key, digest(request))
    if key not in _expected:
        if not any(known == workload_key for known, _ in _expected):
            _expected.clear()  # one workload at a time: do not keep old models' replies around
        _expected[key] = workload.expected_reply(request)
    return _expected[key]


class ReplyPeers:
    """The replies of the run's systems whose reply the harness cannot compute, by
    workload: the first system's are the reference for the next ones."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[str, list[Any]]] = {}

    def reference(
        self, label: str, workload_key: str, replies: list[Any]
    ) -> tuple[str, list[Any]] | None:
        """The first system's label and replies; ``None`` (and these become the
        reference) when ``label`` is the first."""
        if workload_key in self._first:
            return self._first[workload_key]
        self._first[workload_key] = (label, replies)
        return None


def check_equivalent(
    system: System, spec: SystemSpec, workload: Workload, peers: ReplyPeers | None = None
) -> dict[str, Any]:
    """Each of the workload's requests once before measuring; raise
    :class:`SystemFailure` on a wrong reply. Returns how the replies were checked and
    their digest, for the record."""
    requests = workload.requests()
    client = system.client()
    try:
        replies = [client.call(request) for request in requests]
    finally:
        client.close()
    check: dict[str, Any] = {"requests": len(requests), "digest": digest_all(replies)}
    workload_key = system.scenario.workload.model_dump_json()
    if not system.reply_known:
        check["method"] = "compared"
        reference = (peers or ReplyPeers()).reference(spec.column, workload_key, replies)
        if reference is None:
            check["note"] = "a reply the harness cannot compute: the reference for the others"
            return check
        peer, theirs = reference
        check["compared_with"] = peer
        for reply, reference in zip(replies, theirs, strict=True):
            if problem := mismatch(reference, reply, workload.tolerance):
                raise SystemFailure(
                    f"{spec.column}: replies differ from {peer}'s (the same workload, "
                    f"a reply the harness cannot compute): {problem}"
                )
        return check
    if system.computes:
        expected = [expected_reply(workload, workload_key, request) for request in requests]
        what, check["method"] = "the workload's expected reply", "expected"
    else:
        expected = [workload.reply_without_compute(request) for request in requests]
        what, check["method"] = "the workload's prepared (no-compute) reply", "prepared"
    for index, (reply, want) in enumerate(zip(replies, expected, strict=True)):
        if problem := mismatch(_as_array(want), reply, workload.tolerance):
            step = f" (request {index + 1} of {len(requests)})" if len(requests) > 1 else ""
            raise SystemFailure(
                f"{spec.column}: wrong reply{step}, not equivalent to {what}: {problem}"
            )
    return check


def digest_all(replies: list[Any]) -> str:
    """One digest for a list of replies (a single reply: that reply's digest)."""
    if len(replies) == 1:
        return digest(replies[0])
    return hashlib.sha256("".join(digest(reply) for reply in replies).encode()).hexdigest()


def _as_array(value: Any) -> Any:
    return value if isinstance(value, dict) else np.asarray(value)
