"""The process backend: an instance whose backend object lives in a worker process.

For GIL-bound Python backends, threads cannot run in parallel; a process per instance
can. The engine uses a :class:`ProcessInstance` exactly like a backend object: its
``forward`` sends the batch to the child and waits for the replies. If the child dies,
the batch in flight fails with :class:`WorkerCrashedError` (its callers get the error
instead of hanging) and a fresh child is started for the next batch.
"""

from __future__ import annotations

import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import Any

_context = multiprocessing.get_context("spawn")


class WorkerCrashedError(RuntimeError):
    """The worker process died while it held a batch."""


class RemoteBackendError(RuntimeError):
    """A backend exception that could not be sent back as itself."""


def _child(cls: type, params: dict[str, Any], conn: Connection) -> None:
    """The worker process: init once, then forward batches until the pipe closes."""
    try:
        backend = cls()
        backend.init(params)
    except BaseException as exc:
        conn.send(("error", _portable(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", backend.forward(batch)))
        except Exception as exc:
            conn.send(("error", _portable(exc)))


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it pickles, else a RemoteBackendError carrying its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return RemoteBackendError(text)


class ProcessInstance:
    """A backend instance in a child process; used by one thread at a time."""

    def __init__(self, cls: type, params: dict[str, Any]) -> None:
        self._cls = cls
        self._params = params
        self.respawns = 0
        self._spawn()

    def _spawn(self) -> None:
        parent, child = _context.Pipe()
        self._process = _context.Process(
            target=_child, args=(self._cls, self._params, child), daemon=True
        )
        self._process.start()
        child.close()
        self._conn = parent
        status, payload = self._receive()
        if status == "error":
            self.close()
            raise payload

    def _receive(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._process.join(5)
            code = self._process.exitcode
            raise WorkerCrashedError(
                f"backend worker process {self._process.pid} died (exit code {code})"
            ) from None

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def forward(self, batch: list[Any]) -> list[Any]:
        try:
            self._conn.send(batch)
            status, payload = self._receive()
        except (WorkerCrashedError, BrokenPipeError, ConnectionResetError) as exc:
            self._conn.close()
            self.respawns += 1
            self._spawn()
            if isinstance(exc, WorkerCrashedError):
                raise
            raise WorkerCrashedError(f"backend worker process died: {exc}") from None
        if status == "error":
            raise payload
        return payload

    def close(self) -> None:
        self._conn.close()
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
