"""The pipe engine with real threads: correctness, batching, errors, close."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from engines.pipe import Backend, Pipe, PipeConfigError, register_backend
from engines.pipe.engine import PipeClosedError


class Double(Backend):
    def forward(self, batch: Sequence[Any]) -> list[Any]:
        return [2 * x for x in batch]


class SlowRecorder(Backend):
    """Sleeps per batch and records each batch it saw (class-level, for assertions)."""

    seen: ClassVar[list[list[int]]] = []

    def init(self, params: dict[str, Any]) -> None:
        self.delay = params.get("delay", 0.01)

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        SlowRecorder.seen.append(list(batch))
        time.sleep(self.delay)
        return list(batch)


class FailOnNegative(Backend):
    def forward(self, batch: Sequence[Any]) -> list[Any]:
        if any(x < 0 for x in batch):
            raise ValueError("negative input")
        return list(batch)


class InitFails(Backend):
    def init(self, params: dict[str, Any]) -> None:
        raise RuntimeError("cannot load model")


register_backend("test.double", Double)
register_backend("test.slow", SlowRecorder)
register_backend("test.fail", FailOnNegative)
register_backend("test.init_fails", InitFails)


def call_concurrently(pipe: Pipe, values: Sequence[int]) -> dict[int, Any]:
    results: dict[int, Any] = {}

    def one(value: int) -> None:
        results[value] = pipe(value, timeout=10)

    threads = [threading.Thread(target=one, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_each_caller_gets_its_own_reply_under_concurrency():
    with Pipe(
        {"backend": "test.double", "instance_num": 3, "max": 4, "batching_timeout": 1}
    ) as pipe:
        results = call_concurrently(pipe, range(200))
    assert results == {v: 2 * v for v in range(200)}


def test_batches_never_exceed_max_and_fill_up_within_timeout():
    SlowRecorder.seen = []
    config = {"backend": "test.slow", "max": 4, "batching_timeout": 200, "params": {"delay": 0}}
    with Pipe(config) as pipe:
        call_concurrently(pipe, range(8))
        stats = pipe.stats()
    assert all(len(batch) <= 4 for batch in SlowRecorder.seen)
    assert stats["requests"] == 8
    assert max(stats["batch_sizes"]) == 4


def test_partial_batch_leaves_after_the_timeout():
    config = {"backend": "test.slow", "max": 4, "batching_timeout": 30, "params": {"delay": 0}}
    with Pipe(config) as pipe:
        started = time.monotonic()
        assert pipe(7) == 7
        waited = time.monotonic() - started
    assert waited < 1.0


def test_timeout_zero_serves_in_arrival_order():
    SlowRecorder.seen = []
    with Pipe({"backend": "test.slow", "params": {"delay": 0.02}}) as pipe:
        threads = []
        for value in range(5):
            thread = threading.Thread(target=pipe, args=(value,))
            thread.start()
            threads.append(thread)
            time.sleep(0.005)  # arrive in a known order while the instance is busy
        for thread in threads:
            thread.join()
    assert [batch[0] for batch in SlowRecorder.seen] == list(range(5))


def test_backend_error_reaches_only_its_caller_and_engine_keeps_serving():
    with Pipe({"backend": "test.fail"}) as pipe:
        with pytest.raises(ValueError, match="negative input"):
            pipe(-1)
        assert pipe(5) == 5
        assert pipe.stats()["errors"] == 1


def test_init_error_is_raised_by_the_constructor():
    with pytest.raises(RuntimeError, match="cannot load model"):
        Pipe({"backend": "test.init_fails", "instance_num": 2})


def test_close_drains_queued_requests_then_refuses_new_ones():
    SlowRecorder.seen = []
    pipe = Pipe({"backend": "test.slow", "params": {"delay": 0.01}})
    results: list[Any] = []
    threads = [threading.Thread(target=lambda v=v: results.append(pipe(v))) for v in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.005)
    pipe.close()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(6))
    with pytest.raises(PipeClosedError):
        pipe(1)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"backend": "nope"}, "backend"),
        ({"backend": "test.double", "instance_num": 0}, "instance_num"),
        ({"backend": "test.double", "max": -1}, "max"),
        ({"backend": "test.double", "batching_timeout": -5}, "batching_timeout"),
        ({"backend": "test.double", "max": 2, "min": 3}, "min"),
        ({"backend": "test.double", "bogus": 1}, "bogus"),
    ],
)
def test_bad_config_names_the_key(config, key):
    with pytest.raises(PipeConfigError, match=rf"pipe config: {key}:"):
        Pipe(config)
