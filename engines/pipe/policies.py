"""Batching policies: when a partial batch should wait for more requests, and how long.

The engine asks only when waiting is possible at all: fewer than ``max`` requests are
queued, ``batching_timeout`` is above 0 and the pipe is open. A policy answers with the
seconds still worth waiting (``<= 0``: dispatch now); the engine never waits past the
oldest request's deadline.

- ``torchpipe-v0``: the report's engine. It counts consecutive requests that arrived with
  nothing else in flight; after 100 it stops waiting (probing every 100th), any overlap
  resets it. Two closed-loop clients always overlap, hence the seed's 10.25 ms.
- ``torchpipe``: today's core (0.2): dispatch at once if this is the only request and
  every instance is idle, else wait for ``max`` requests or the timeout.
- ``adaptive`` (default): waits only while the wait is expected to pay for itself.
"""

from __future__ import annotations

from typing import ClassVar


class BatchPolicy:
    name: ClassVar[str]

    def __init__(self, timeout_s: float, max_batch: int, instances: int) -> None:
        self.timeout_s = timeout_s
        self.max_batch = max_batch
        self.instances = instances

    def on_arrival(self, in_flight: int, now: float) -> None:
        """A request arrived; ``in_flight`` requests were already queued or running."""

    def on_batch(self, size: int, seconds: float) -> None:
        """A batch of ``size`` took ``seconds`` in the backend."""

    def wait_s(self, pending: int, running: int, busy: int, age_s: float) -> float:
        """How much longer ``pending`` queued requests (the oldest ``age_s`` old) should wait.

        ``running`` requests are in the backend on ``busy`` other instances.
        """
        raise NotImplementedError


class TorchpipeV0(BatchPolicy):
    name = "torchpipe-v0"
    SOLO_RUN = 100

    def __init__(self, timeout_s: float, max_batch: int, instances: int) -> None:
        super().__init__(timeout_s, max_batch, instances)
        self._solo = 0

    def on_arrival(self, in_flight: int, now: float) -> None:
        self._solo = self._solo + 1 if in_flight == 0 else 0

    def wait_s(self, pending: int, running: int, busy: int, age_s: float) -> float:
        trusted = self._solo >= self.SOLO_RUN and self._solo % self.SOLO_RUN != 0
        return 0.0 if trusted else self.timeout_s - age_s


class Torchpipe(BatchPolicy):
    name = "torchpipe"

    def wait_s(self, pending: int, running: int, busy: int, age_s: float) -> float:
        return 0.0 if pending == 1 and busy == 0 else self.timeout_s - age_s


class Adaptive(BatchPolicy):
    """Wait only while the requests that can still come would save more than the wait.

    Two things are learned from what the engine already records:

    - *who can still come*: the most requests seen in the engine at once over the last
      second approximates the active callers (closed loop: every client has at most one
      request out). Callers already queued or running cannot send another, so with one
      client, or when everyone is already in, waiting is pointless.
    - *what a fuller batch saves*: a batch's cost is fitted as ``fixed + per_item * size``
      from the measured batch times. Each request that joins the batch instead of forming
      its own later saves ``fixed`` of instance time, so the worthwhile wait is at most
      ``fixed * (requests that can still come)``. A backend whose cost grows with the batch
      (fixed ~ 0) is never made to wait: idle instances take the work at once. Until two
      batch sizes have been seen the whole cost is taken as fixed, which makes the policy
      try a batch and learn.

    It never waits while another instance is idle (that instance could run the requests
    now), nor when the saving is below what waiting itself costs (handing the batch to a
    worker thread instead of running it on the caller's: tens of microseconds), and never
    polls: the waiting worker sleeps until an arrival or its deadline.
    """

    name = "adaptive"
    WINDOW_S = 1.0
    SMOOTHING = 0.1
    #: Below this, a wait cannot pay for the thread hand-off it forces.
    MIN_WORTHWHILE_S = 50e-6

    def __init__(self, timeout_s: float, max_batch: int, instances: int) -> None:
        super().__init__(timeout_s, max_batch, instances)
        self._peak = 0
        self._previous_peak = 0
        self._window_end = 0.0
        self._cost: dict[int, float] = {}

    def on_arrival(self, in_flight: int, now: float) -> None:
        if now >= self._window_end:
            self._previous_peak, self._peak = self._peak, 0
            self._window_end = now + self.WINDOW_S
        self._peak = max(self._peak, in_flight + 1)

    def on_batch(self, size: int, seconds: float) -> None:
        old = self._cost.get(size)
        self._cost[size] = seconds if old is None else old + self.SMOOTHING * (seconds - old)

    def fixed_cost_s(self) -> float:
        """The intercept of a least-squares line through (size, mean cost) points."""
        if not self._cost:
            return 0.0
        if len(self._cost) == 1:
            return next(iter(self._cost.values()))
        sizes, costs = list(self._cost), list(self._cost.values())
        mean_size, mean_cost = sum(sizes) / len(sizes), sum(costs) / len(costs)
        spread = sum((s - mean_size) ** 2 for s in sizes)
        slope = sum((s - mean_size) * (c - mean_cost) for s, c in zip(sizes, costs, strict=True))
        return max(0.0, mean_cost - slope / spread * mean_size)

    def wait_s(self, pending: int, running: int, busy: int, age_s: float) -> float:
        if busy + 1 < self.instances:  # another instance is idle: run now
            return 0.0
        callers = max(self._peak, self._previous_peak)
        can_come = min(callers - pending - running, self.max_batch - pending)
        if can_come <= 0:
            return 0.0
        saving = self.fixed_cost_s() * can_come
        if saving < self.MIN_WORTHWHILE_S:
            return 0.0
        return min(saving, self.timeout_s) - age_s


POLICIES: dict[str, type[BatchPolicy]] = {
    policy.name: policy for policy in (TorchpipeV0, Torchpipe, Adaptive)
}
