"""The pipe engine with real threads and processes: order, batching, errors, close."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from engines.pipe import Pipe, PipeConfigError
from engines.pipe.engine import PipeClosedError
from engines.pipe.process_backend import WorkerCrashedError
from tests.engine_backends import Recorder


@pytest.fixture(autouse=True)
def _fresh_recorder():
    Recorder.seen = []


def call_concurrently(pipe: Pipe, values: Sequence[Any]) -> dict[Any, Any]:
    results: dict[Any, Any] = {}

    def one(value: Any) -> None:
        results[value] = pipe(value, timeout=10)

    threads = [threading.Thread(target=one, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def closed_loop(pipe: Pipe, clients: int, seconds: float) -> int:
    """``clients`` threads calling back to back; returns the number of replies."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        while time.monotonic() < stop:
            pipe(index, timeout=10)
            done[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def test_each_caller_gets_its_own_reply_under_concurrency():
    config = {"backend": "test.double", "instance_num": 3, "max": 4, "batching_timeout": 1}
    with Pipe(config) as pipe:
        results = call_concurrently(pipe, range(200))
    assert results == {v: 2 * v for v in range(200)}


def test_waiting_policy_fills_batches_up_to_max():
    config = {
        "backend": "test.recorder",
        "max": 4,
        "batching_timeout": 500,
        "policy": "torchpipe",
        "params": {"delay": 0.05},
    }
    with Pipe(config) as pipe:
        first = threading.Thread(target=pipe, args=(-1,))
        first.start()  # occupies the instance, so the next ones must wait
        time.sleep(0.01)
        call_concurrently(pipe, range(8))
        first.join()
        stats = pipe.stats()
    assert [len(batch) for batch in Recorder.seen] == [1, 4, 4]
    assert stats["batch_sizes"] == {1: 1, 4: 2} and stats["requests"] == 9


def test_partial_batch_leaves_at_the_timeout():
    config = {"backend": "test.recorder", "max": 4, "batching_timeout": 150, "min": 2}
    with Pipe(config) as pipe:
        started = time.monotonic()
        assert pipe(7) == 7
        waited = time.monotonic() - started
    assert 0.14 <= waited < 2.0


def test_min_holds_a_batch_until_enough_requests_arrive():
    config = {"backend": "test.recorder", "max": 4, "min": 3, "batching_timeout": 5000}
    with Pipe(config) as pipe:
        call_concurrently(pipe, range(3))
    assert [sorted(batch) for batch in Recorder.seen] == [[0, 1, 2]]


def test_timeout_zero_serves_in_arrival_order():
    with Pipe({"backend": "test.recorder", "params": {"delay": 0.02}}) as pipe:
        threads = []
        for value in range(6):
            thread = threading.Thread(target=pipe, args=(value,))
            thread.start()
            threads.append(thread)
            time.sleep(0.004)  # arrive in a known order while the instance is busy
        for thread in threads:
            thread.join()
    assert [batch[0] for batch in Recorder.seen] == list(range(6))


def test_v0_policy_waits_for_overlapping_callers_and_trusts_a_lone_one():
    config = {
        "backend": "test.recorder",
        "max": 4,
        "batching_timeout": 30,
        "policy": "torchpipe-v0",
    }
    with Pipe(config) as pipe:
        started = time.monotonic()
        pipe(0)
        assert time.monotonic() - started >= 0.025  # a new pipe has no trust yet
        for value in range(120):
            pipe(value)  # 100+ lone requests: it stops waiting
        started = time.monotonic()
        pipe(1)
        assert time.monotonic() - started < 0.025


def test_adaptive_never_makes_a_lone_caller_wait():
    config = {"backend": "test.recorder", "max": 4, "batching_timeout": 1000}
    with Pipe(config) as pipe:
        started = time.monotonic()
        for value in range(20):
            pipe(value)
        assert time.monotonic() - started < 0.5  # 20 x 1 s if it waited


def test_adaptive_forms_full_batches_when_batch_cost_is_fixed():
    """4 closed-loop callers, a 5 ms per-batch cost: no ping-pong of half batches."""
    config = {
        "backend": "test.recorder",
        "max": 4,
        "batching_timeout": 50,
        "params": {"delay": 0.005},
    }
    with Pipe(config) as pipe:
        closed_loop(pipe, clients=4, seconds=1.0)
        sizes = pipe.stats()["batch_sizes"]
    full = sizes.get(4, 0) * 4
    assert full / sum(size * count for size, count in sizes.items()) > 0.8, sizes


def test_adaptive_uses_idle_instances_when_cost_grows_with_the_batch():
    """A cost per item: waiting gains nothing, so both instances take requests at once."""
    config = {
        "backend": "test.recorder",
        "instance_num": 2,
        "max": 4,
        "batching_timeout": 50,
        "params": {"per_item": 0.005},
    }
    with Pipe(config) as pipe:
        closed_loop(pipe, clients=4, seconds=1.0)
        stats = pipe.stats()
    # Two instances serving 4 callers: mean batch near 2, not 4 after a long wait.
    assert stats["requests"] / stats["batches"] < 3.0, stats
    assert stats["queue_wait_ms_mean"] < 10, stats


def test_a_waiting_batch_burns_no_cpu():
    config = {
        "backend": "test.recorder",
        "max": 4,
        "batching_timeout": 2000,
        "min": 4,
        "params": {"delay": 0},
    }
    with Pipe(config) as pipe:
        waiter = threading.Thread(target=pipe, args=(1,))
        cpu = time.process_time()
        waiter.start()
        time.sleep(0.5)
        used = time.process_time() - cpu
        call_concurrently(pipe, [2, 3, 4])
        waiter.join()
    assert used < 0.1, f"{used:.3f} s of CPU while one request waited 0.5 s"


def test_backend_error_reaches_only_its_caller_and_engine_keeps_serving():
    with Pipe({"backend": "test.fail"}) as pipe:
        with pytest.raises(ValueError, match="negative input"):
            pipe(-1)
        assert pipe(5) == 5
        assert pipe.stats()["errors"] == 1


def test_requests_their_callers_ran_count_like_batches_of_one():
    with Pipe({"backend": "test.recorder", "params": {"delay": 0.002}}) as pipe:
        for value in range(5):
            assert pipe(value) == value  # one caller: each runs on the idle instance
        stats = pipe.stats()
    assert (stats["requests"], stats["batches"], stats["batch_sizes"]) == (5, 5, {1: 5})
    assert stats["queue_us_total"] == 0.0 and stats["errors"] == 0
    assert stats["compute_us_total"] >= 5 * 2000  # each request's own backend time


def test_init_error_is_raised_by_the_constructor():
    with pytest.raises(RuntimeError, match="cannot load model"):
        Pipe({"backend": "test.init_fails", "instance_num": 2})


def test_init_runs_on_the_instance_worker():
    with Pipe({"backend": "test.where", "instance_num": 2}) as pipe:
        _, init_thread, _ = pipe("x")
    assert init_thread.startswith("pipe-test.where-")


def test_close_drains_queued_requests_then_refuses_new_ones():
    pipe = Pipe({"backend": "test.recorder", "params": {"delay": 0.01}})
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


def test_close_gives_up_on_a_hung_backend_after_its_timeout():
    pipe = Pipe({"backend": "test.recorder", "params": {"delay": 5.0}})
    caller = threading.Thread(target=pipe, args=(1,), daemon=True)
    caller.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"instance\(s\) \[0\] still busy"):
        pipe.close(timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_submit_batch_and_await():
    with Pipe({"backend": "test.double", "max": 4, "batching_timeout": 5}) as pipe:
        future = pipe.submit(21)
        assert future.result(5) == 42
        assert pipe.batch([1, 2, 3]) == [2, 4, 6]
        assert asyncio.run(pipe.acall(5)) == 10
        failing = Pipe({"backend": "test.fail"})
        with pytest.raises(ValueError, match="negative"):
            failing.submit(-3).result(5)
        failing.close()


def test_caller_timeout_is_honoured():
    with Pipe({"backend": "test.recorder", "params": {"delay": 0.3}}) as pipe:
        blocker = threading.Thread(target=pipe, args=(0,))
        blocker.start()
        time.sleep(0.02)
        with pytest.raises(TimeoutError):
            pipe(1, timeout=0.05)
        blocker.join()


def test_process_instances_run_in_their_own_processes():
    with Pipe({"backend": "test.where", "instance_num": 2, "kind": "process"}) as pipe:
        pids = {reply[0] for reply in call_concurrently(pipe, range(20)).values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_process_worker_crash_fails_its_request_and_is_respawned():
    with Pipe({"backend": "test.where", "kind": "process"}) as pipe:
        before = pipe("x")[0]
        with pytest.raises(WorkerCrashedError, match="exit code 17"):
            pipe("die")
        after = pipe("x")[0]
    assert after != before


def test_process_worker_killed_from_outside_errors_instead_of_hanging():
    with Pipe({"backend": "test.where", "kind": "process"}) as pipe:
        pid = pipe("x")[0]
        result: list[Any] = []

        def hang() -> None:
            try:
                pipe("hang", timeout=30)
            except WorkerCrashedError as exc:
                result.append(exc)

        caller = threading.Thread(target=hang)
        caller.start()
        time.sleep(0.3)
        os.kill(pid, 9)
        caller.join(10)
        assert result and isinstance(result[0], WorkerCrashedError)
        assert pipe("x")[0] != pid


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"backend": "nope"}, "backend"),
        ({"backend": "test.double", "instance_num": 0}, "instance_num"),
        ({"backend": "test.double", "max": -1}, "max"),
        ({"backend": "test.double", "batching_timeout": -5}, "batching_timeout"),
        ({"backend": "test.double", "max": 2, "min": 3}, "min"),
        ({"backend": "test.double", "policy": "eager"}, "policy"),
        ({"backend": "test.double", "kind": "fiber"}, "kind"),
        ({"backend": "test.double", "bogus": 1}, "bogus"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, Any], key: str):
    with pytest.raises(PipeConfigError, match=rf"pipe config: {key}:"):
        Pipe(config)
