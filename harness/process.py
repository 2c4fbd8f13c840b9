"""Child server processes that are always stopped: by :meth:`stop`, at exit, or with us.

Every server the harness launches (Thrift, tritonserver) is a :class:`ServerProcess`:
it runs in its own process group (so its children, e.g. Triton's Python stubs, are
signalled with it), it is killed by the kernel if the harness dies (``PR_SET_PDEATHSIG``),
and its output goes to a log file whose tail explains a failure.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.errors import SystemFailure

_PR_SET_PDEATHSIG = 1
_live: set[ServerProcess] = set()


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the harness goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ServerProcess:
    """One launched server; ``name`` is used in every message about it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"pipebench-{_slug(name)}-", suffix=".log")[1])
        with self.log_path.open("wb") as log:
            try:
                self._popen = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise SystemFailure(f"{name}: cannot start {argv[0]}: {exc.strerror}") from None
        _live.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise SystemFailure(
                f"{self.name}: server exited with code {self._popen.returncode}; "
                f"last lines of its log:\n{self.log_tail()}"
            )

    def wait_for(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Call ``probe`` until it is true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise SystemFailure(
                    f"{self.name}: exited with code {self._popen.returncode} before {what}; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise SystemFailure(
                    f"{self.name}: not {what} after {timeout:g} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds. Idempotent."""
        if self in _live:
            _live.discard(self)
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
            # Children that outlived the leader (e.g. Python stubs) share its group.
            self._signal_group(signal.SIGKILL)
        self.log_path.unlink(missing_ok=True)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def stop_all() -> None:
    """Stop every server still running; called at exit and on interruption."""
    for process in list(_live):
        process.stop(grace=2.0)


atexit.register(stop_all)
