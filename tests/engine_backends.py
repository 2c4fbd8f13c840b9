"""Backends used by the engine tests. A module of its own so that worker processes
(spawned, not forked) can import them by name."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from engines.pipe import Backend, register_backend


class Double(Backend):
    def forward(self, batch: Sequence[Any]) -> list[Any]:
        return [2 * x for x in batch]


class Recorder(Backend):
    """Sleeps ``delay`` per batch and records every batch it saw (class-level)."""

    seen: ClassVar[list[list[Any]]] = []

    def init(self, params: dict[str, Any]) -> None:
        self.delay = params.get("delay", 0.0)
        self.per_item = params.get("per_item", 0.0)

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        Recorder.seen.append(list(batch))
        time.sleep(self.delay + self.per_item * len(batch))
        return list(batch)


class FailOnNegative(Backend):
    def forward(self, batch: Sequence[Any]) -> list[Any]:
        if any(x < 0 for x in batch):
            raise ValueError("negative input")
        return list(batch)


class InitFails(Backend):
    def init(self, params: dict[str, Any]) -> None:
        raise RuntimeError("cannot load model")


class WhereAmI(Backend):
    """Replies with the process id and the thread that ran the batch."""

    def init(self, params: dict[str, Any]) -> None:
        import threading

        self.init_thread = threading.current_thread().name

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        import threading

        if any(x == "die" for x in batch):
            os._exit(17)
        if any(x == "hang" for x in batch):
            time.sleep(3600)
        return [(os.getpid(), self.init_thread, threading.current_thread().name) for _ in batch]


register_backend("test.double", Double)
register_backend("test.recorder", Recorder)
register_backend("test.fail", FailOnNegative)
register_backend("test.init_fails", InitFails)
register_backend("test.where", WhereAmI)


class Sleep(Backend):
    """Echo after ``delay`` seconds per batch: a server with a hard capacity that the
    machine's CPU noise hardly moves (sleeping needs no CPU)."""

    def init(self, params: dict[str, Any]) -> None:
        self.delay = params["delay"]

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        time.sleep(self.delay)
        return list(batch)
