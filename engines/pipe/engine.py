"""The engine's core: a queue, a batch former and N backend instances.

Callers append to one FIFO queue under a lock and block on their own request's lock;
each instance's worker thread forms a batch under the same lock (a condition variable:
no polling), runs the backend outside it, and releases each caller with its reply.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from engines.pipe.backends import Backend, backend_class
from engines.pipe.config import NodeConfig


class PipeClosedError(RuntimeError):
    """The pipe was closed before the request could be queued."""


class _Request:
    """One caller's request: its data, then its reply or error, and a lock to wait on."""

    __slots__ = ("_done", "data", "enqueued", "error", "result")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.result: Any = None
        self.error: BaseException | None = None
        self.enqueued = time.monotonic()
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self._done.release()

    def wait(self, timeout: float | None = None) -> Any:
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"no reply within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class NodeStats:
    """Counters the workers update once per batch; read with :meth:`Pipe.stats`."""

    requests: int = 0
    batches: int = 0
    errors: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    queue_wait_s: float = 0.0
    compute_s: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "batches": self.batches,
            "errors": self.errors,
            "batch_sizes": dict(sorted(self.batch_sizes.items())),
            "queue_wait_ms_mean": 1e3 * self.queue_wait_s / self.requests if self.requests else 0,
            "compute_ms_mean": 1e3 * self.compute_s / self.batches if self.batches else 0,
        }


class Pipe:
    """A thread-safe, blocking, batching call into ``instance_num`` backend instances."""

    def __init__(self, config: dict[str, Any] | NodeConfig) -> None:
        self.config = config if isinstance(config, NodeConfig) else NodeConfig.parse(config)
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Request] = deque()
        self._closed = False
        self._stats = NodeStats()
        self._timeout_s = self.config.batching_timeout / 1e3
        self._workers: list[threading.Thread] = []
        for index in range(self.config.instance_num):
            self._workers.append(self._start_worker(index))

    # -- callers -------------------------------------------------------------------------
    def __call__(self, data: Any, timeout: float | None = None) -> Any:
        """Run ``data`` through the backend and return its reply (or raise its error)."""
        return self._enqueue(data).wait(timeout)

    def _enqueue(self, data: Any) -> _Request:
        request = _Request(data)
        with self._cond:
            if self._closed:
                raise PipeClosedError("pipe is closed")
            self._queue.append(request)
            self._cond.notify()
        return request

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return self._stats.snapshot()

    def close(self) -> None:
        """Stop taking requests, finish every queued one, then stop the workers."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for worker in self._workers:
            worker.join()

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workers -------------------------------------------------------------------------
    def _start_worker(self, index: int) -> threading.Thread:
        started = threading.Event()
        failure: list[BaseException] = []
        worker = threading.Thread(
            target=self._work, args=(started, failure), name=f"pipe-{index}", daemon=True
        )
        worker.start()
        started.wait()
        if failure:
            worker.join()
            self.close()
            raise failure[0]
        return worker

    def _work(self, started: threading.Event, failure: list[BaseException]) -> None:
        try:
            backend: Backend = backend_class(self.config.backend)()  # type: ignore[misc]
            backend.init(dict(self.config.params))
        except BaseException as exc:  # reported to the constructor, which re-raises it
            failure.append(exc)
            return
        finally:
            started.set()
        while (batch := self._collect()) is not None:
            self._run(backend, batch)

    def _collect(self) -> list[_Request] | None:
        """Wait for work and form the next batch; ``None`` once closed and drained."""
        config, queue = self.config, self._queue
        with self._cond:
            while not queue:
                if self._closed:
                    return None
                self._cond.wait()
            if len(queue) < max(config.min, 1) or (
                config.max > 1 and self._timeout_s > 0 and len(queue) < config.max
            ):
                deadline = queue[0].enqueued + self._timeout_s
                while len(queue) < config.max and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            return [queue.popleft() for _ in range(min(config.max, len(queue)))]

    def _run(self, backend: Backend, batch: list[_Request]) -> None:
        started = time.monotonic()
        try:
            replies = backend.forward([request.data for request in batch])
            if len(replies) != len(batch):
                raise RuntimeError(
                    f"backend {self.config.backend!r} returned {len(replies)} replies "
                    f"for a batch of {len(batch)}"
                )
            error = None
        except Exception as exc:
            replies, error = [None] * len(batch), exc
        finished = time.monotonic()
        with self._cond:
            stats = self._stats
            stats.requests += len(batch)
            stats.batches += 1
            stats.errors += len(batch) if error else 0
            stats.batch_sizes[len(batch)] += 1
            stats.queue_wait_s += sum(started - request.enqueued for request in batch)
            stats.compute_s += finished - started
        for request, reply in zip(batch, replies, strict=True):
            request.finish(reply, error)
