"""The engine's core: one FIFO queue, a batching policy and N backend instances.

Scheduling happens under one lock and nothing ever polls:

- A caller that finds the queue empty, an instance idle and the policy unwilling to wait
  runs the backend *on its own thread* (the instance is borrowed, so still one batch at a
  time per instance): no thread hand-off at all, which is what a local call should cost.
- Otherwise the request is queued and the caller sleeps on its own lock. Each instance has
  a worker thread, parked on its own lock while idle; an arrival wakes one idle worker,
  which forms a batch (waiting, if the policy says so, until an arrival or its deadline
  wakes it) and keeps serving the queue until it is empty. Order is FIFO.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from time import monotonic, perf_counter
from typing import Any

from engines.pipe.backends import Backend, backend_class
from engines.pipe.config import NodeConfig
from engines.pipe.policies import POLICIES, BatchPolicy
from engines.pipe.process_backend import ProcessInstance
from engines.pipe.stats import InstanceStats, merge_stats


class PipeClosedError(RuntimeError):
    """The pipe was closed before the request could be queued."""


class _Request:
    """A queued request: its data, then its reply or error, and a lock to wait on."""

    __slots__ = ("_done", "data", "enqueued", "error", "future", "result")

    def __init__(self, data: Any, enqueued: float, future: Future[Any] | None = None) -> None:
        self.data = data
        self.enqueued = enqueued
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, result: Any, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self._done.release()
        if self.future is not None:
            if error is None:
                self.future.set_result(result)
            else:
                self.future.set_exception(error)

    def wait(self, timeout: float | None) -> Any:
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"no reply within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class _Instance:
    """One backend instance and the worker thread that owns it."""

    __slots__ = ("backend", "forward", "index", "stats", "thread", "wake")

    def __init__(self, index: int) -> None:
        self.index = index
        self.backend: Backend | ProcessInstance | None = None
        #: The backend's bound ``forward``, looked up once rather than on every batch.
        self.forward: Callable[[list[Any]], list[Any]] | None = None
        self.stats = InstanceStats()
        self.wake = threading.Lock()  # released to hand the worker something to do
        self.wake.acquire()
        self.thread: threading.Thread | None = None


class Pipe:
    """A thread-safe, blocking, batching call into ``instance_num`` backend instances."""

    def __init__(self, config: dict[str, Any] | NodeConfig) -> None:
        self.config = config if isinstance(config, NodeConfig) else NodeConfig.parse(config)
        cfg = self.config
        self._timeout_s = cfg.batching_timeout / 1e3
        #: Whether a batch may wait for more: only then is the policy asked (and told).
        self._may_wait = self._timeout_s > 0 and cfg.max > 1
        self._policy: BatchPolicy = POLICIES[cfg.policy](self._timeout_s, cfg.max, cfg.instance_num)
        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._idle: list[_Instance] = []
        self._filler: _Instance | None = None  # the worker waiting for a fuller batch
        self._busy = 0  # instances running a batch (workers or borrowing callers)
        self._running = 0  # requests inside those batches
        self._closed = False
        backend_cls = backend_class(cfg.backend)
        inline = cfg.kind == "process" or not getattr(backend_cls, "thread_affine", False)
        #: Whether an arrival may run at once on an idle instance (see :meth:`_admit`).
        self._borrow = inline and cfg.min == 1
        self._instances = [_Instance(i) for i in range(cfg.instance_num)]
        for instance in self._instances:
            self._start(instance)

    # -- callers -------------------------------------------------------------------------
    def __call__(self, data: Any, timeout: float | None = None) -> Any:
        """Run ``data`` through the backend; return its reply or raise its error.

        The caller-runs path is written out here rather than in helpers: it is the whole
        engine cost of every request that overlaps no other (one client; a Thrift server's
        threads, which take turns on the GIL), four Python calls with the workload backend
        where there were nine.
        """
        with self._lock:
            instance = self._admit()
            if instance is None:
                request = _Request(data, monotonic())
                self._enqueue(request)
        if instance is None:
            return request.wait(timeout)
        started = perf_counter()
        error: Exception | None = None
        try:
            replies = instance.forward([data])  # type: ignore[misc]
            if len(replies) != 1:
                raise self._miscount(replies, 1)
        except Exception as exc:
            error = exc
        seconds = perf_counter() - started
        stats = instance.stats  # still this caller's alone: counted without a lock
        stats.solo += 1
        stats.solo_s += seconds
        if error is not None:
            stats.errors += 1
        with self._lock:
            self._batch_done(1, seconds)
            if self._queue or self._closed:  # its worker serves what queued meanwhile
                instance.wake.release()
            else:
                self._idle.append(instance)
        if error is not None:
            raise error
        return replies[0]

    def submit(self, data: Any) -> Future[Any]:
        """Queue ``data`` and return at once; the future holds the reply or the error."""
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()
        now = monotonic()
        with self._lock:
            if self._closed:
                raise PipeClosedError("pipe is closed")
            if self._may_wait:
                self._policy.on_arrival(len(self._queue) + self._running, now)
            self._enqueue(_Request(data, now, future))
        return future

    async def acall(self, data: Any) -> Any:
        """The awaitable form of :meth:`__call__`, for asyncio callers."""
        import asyncio

        return await asyncio.wrap_future(self.submit(data))

    def batch(self, items: Sequence[Any], timeout: float | None = None) -> list[Any]:
        """Run many requests at once (they may share batches); replies in order."""
        futures = [self.submit(item) for item in items]
        return [future.result(timeout) for future in futures]

    def stats(self) -> dict[str, Any]:
        """The instances' counters, and the serving block this engine was built with (what
        a harness that did not start it reads as the deployment)."""
        config = self.config
        serving = {
            "instances": config.instance_num,
            "batching_timeout_ms": config.batching_timeout,
            "max_batch": config.max,
            "source": "the engine's configuration",
        }
        return {**merge_stats([instance.stats for instance in self._instances]), "serving": serving}

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, finish every queued one, then stop the workers.

        With ``timeout``, give up after that many seconds and raise ``TimeoutError`` (a
        hung backend cannot be interrupted; its daemon thread ends with the process).
        """
        with self._lock:
            self._closed = True
            self._wake_filler()
            while self._idle:
                self._idle.pop().wake.release()
        deadline = None if timeout is None else monotonic() + timeout
        for instance in self._instances:
            thread = instance.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(None if deadline is None else max(0.0, deadline - monotonic()))
        busy = [i.index for i in self._instances if i.thread is not None and i.thread.is_alive()]
        for instance in self._instances:
            if isinstance(instance.backend, ProcessInstance) and instance.index not in busy:
                instance.backend.close()
        if busy:
            raise TimeoutError(f"pipe: instance(s) {busy} still busy after {timeout} s")

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scheduling (callers hold self._lock) --------------------------------------------
    def _admit(self) -> _Instance | None:
        """Count the arrival; return an idle instance if the caller should run it now:
        nothing is queued, the backend may run on any thread, a batch of one is allowed and
        the policy (asked only where a batch may wait) does not want to wait for more."""
        if self._closed:
            raise PipeClosedError("pipe is closed")
        if self._may_wait:
            self._policy.on_arrival(len(self._queue) + self._running, monotonic())
        if self._queue or not self._idle or not self._borrow:
            return None
        if self._may_wait and self._policy_wait(1, 0.0) > 0:
            return None
        instance = self._idle.pop()
        self._busy += 1
        self._running += 1
        return instance

    def _enqueue(self, request: _Request) -> None:
        self._queue.append(request)
        if self._filler is not None:
            self._wake_filler()  # let it re-plan with one more request
        elif self._idle:
            self._idle.pop().wake.release()

    def _wake_filler(self) -> None:
        if self._filler is not None:
            self._filler.wake.release()
            self._filler = None

    def _policy_wait(self, pending: int, age_s: float) -> float:
        """Seconds a partial batch should still wait (<= 0: go), capped by its deadline."""
        if pending < self.config.min:
            return self._timeout_s - age_s
        wait = self._policy.wait_s(pending, self._running, self._busy, age_s)
        return min(wait, self._timeout_s - age_s)

    def _next_batch(self, now: float) -> list[_Request] | float | None:
        """A batch to run, or seconds to wait for a fuller one, or None: nothing queued."""
        queue = self._queue
        if not queue:
            return None
        pending = len(queue)
        if pending < self.config.max and self._may_wait and not self._closed:
            wait = self._policy_wait(pending, now - queue[0].enqueued)
            if wait > 0:
                return wait
        size = min(pending, self.config.max)
        self._busy += 1
        self._running += size
        return [queue.popleft() for _ in range(size)]

    def _batch_done(self, size: int, seconds: float) -> None:
        self._busy -= 1
        self._running -= size
        if self._may_wait:
            self._policy.on_batch(size, seconds)

    # -- running batches -----------------------------------------------------------------
    def _miscount(self, replies: list[Any], size: int) -> RuntimeError:
        return RuntimeError(
            f"backend {self.config.backend!r} returned {len(replies)} replies for a batch of {size}"
        )

    def _run_batch(self, instance: _Instance, batch: list[_Request]) -> None:
        started = perf_counter()
        began = monotonic()
        try:
            replies = instance.forward([request.data for request in batch])  # type: ignore[misc]
            if len(replies) != len(batch):
                raise self._miscount(replies, len(batch))
            error = None
        except Exception as exc:
            replies, error = [None] * len(batch), exc
        seconds = perf_counter() - started
        waited = sum(began - request.enqueued for request in batch)
        instance.stats.record(len(batch), seconds, waited, error is not None)
        with self._lock:
            self._batch_done(len(batch), seconds)
        for request, reply in zip(batch, replies, strict=True):
            request.finish(reply, error)

    # -- workers -------------------------------------------------------------------------
    def _start(self, instance: _Instance) -> None:
        started = threading.Event()
        failure: list[BaseException] = []
        instance.thread = threading.Thread(
            target=self._work,
            args=(instance, started, failure),
            name=f"pipe-{self.config.backend}-{instance.index}",
            daemon=True,
        )
        instance.thread.start()
        started.wait()
        if failure:
            instance.thread.join()
            instance.thread = None
            self.close()
            raise failure[0]

    def _make_backend(self) -> Backend | ProcessInstance:
        cls = backend_class(self.config.backend)
        params = dict(self.config.params)
        if self.config.kind == "process":
            return ProcessInstance(cls, params)  # type: ignore[arg-type]
        backend = cls()  # type: ignore[misc]
        backend.init(params)
        return backend

    def _work(
        self, instance: _Instance, started: threading.Event, failure: list[BaseException]
    ) -> None:
        try:
            instance.backend = self._make_backend()  # init runs on this worker
            instance.forward = instance.backend.forward
        except BaseException as exc:  # handed to the constructor, which re-raises it
            failure.append(exc)
            started.set()
            return
        with self._lock:
            self._idle.append(instance)
        started.set()
        while True:
            instance.wake.acquire()
            if not self._serve(instance):
                return

    def _serve(self, instance: _Instance) -> bool:
        """Serve the queue until it is empty; False once the pipe is closed and drained."""
        while True:
            with self._lock:
                work = self._next_batch(monotonic())
                if work is None:
                    if self._closed:
                        return False
                    self._idle.append(instance)
                    return True
                if isinstance(work, float):
                    self._filler = instance
            if isinstance(work, float):
                self._wait_as_filler(instance, work)
            else:
                self._run_batch(instance, work)

    def _wait_as_filler(self, instance: _Instance, seconds: float) -> None:
        """Sleep until an arrival wakes this worker or ``seconds`` pass. No polling."""
        if instance.wake.acquire(timeout=seconds):
            return
        with self._lock:
            if self._filler is instance:
                self._filler = None  # a genuine timeout
                return
        instance.wake.acquire()  # a wake-up raced the timeout: consume it (immediate)
