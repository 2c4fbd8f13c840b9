"""Child server processes that are always stopped: by :meth:`stop`, at exit, or with us.

Every server the harness launches (Thrift, tritonserver) is a :class:`ServerProcess`:
it runs in its own process group (so its children, e.g. Triton's Python stubs, are
signalled with it), it is killed by the kernel if the harness dies (``PR_SET_PDEATHSIG``),
and its output goes to a log file whose tail explains a failure.

``PR_SET_PDEATHSIG`` alone is not enough: it does not reach the server's own children
(tritonserver's stubs outlive it and keep their ``/dev/shm`` regions), and it fires when
the *thread* that started the server ends. So each server also gets a watchdog process
(:mod:`harness.watchdog`) that kills the whole group and removes the server's leftovers
if the harness dies without stopping it, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.errors import SystemFailure

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: loading symbols in a child forked from a threaded parent can hang.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_WATCHDOG = Path(__file__).with_name("watchdog.py")
_live: set[ServerProcess] = set()


def _die_with(parent: int) -> Callable[[], None]:
    """A pre-exec hook for the child: SIGKILL it when ``parent`` goes away.

    Checking the parent after ``prctl`` closes the race where the harness died between
    fork and ``prctl``: the signal would never come.
    """

    def hook() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _pdeathsig_hook() -> Callable[[], None] | None:
    # The signal fires when the starting *thread* ends: from any other thread than the main
    # one it would kill a healthy server early, so there the watchdog alone covers a crash.
    if threading.current_thread() is threading.main_thread():
        return _die_with(os.getpid())
    return None


class _Watchdog:
    """The :mod:`harness.watchdog` process of one server, and the pipe that dismisses it."""

    def __init__(self, pgid: int, leftovers: Sequence[str | Path]) -> None:
        stop_r, self._stop_w = os.pipe()
        harness_fd = os.pidfd_open(os.getpid())
        argv = [sys.executable, "-I", "-S", str(_WATCHDOG), str(pgid), str(stop_r)]
        try:
            self._popen = subprocess.Popen(
                [*argv, str(harness_fd), *map(str, leftovers)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(stop_r, harness_fd),
                start_new_session=True,
            )
        finally:
            os.close(stop_r)
            os.close(harness_fd)

    def dismiss(self) -> None:
        """The server was stopped normally: let the watchdog exit without doing anything."""
        with contextlib.suppress(OSError):  # EPIPE: the watchdog is gone already
            os.write(self._stop_w, b"x")
        os.close(self._stop_w)
        try:
            self._popen.wait(5.0)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


class ServerProcess:
    """One launched server; ``name`` is used in every message about it.

    ``leftovers`` are paths or globs (a work folder, ``/dev/shm/prefix*``) that the watchdog
    removes if the harness dies without stopping the server; a normal :meth:`stop` leaves
    them to the caller, which knows when they are no longer used.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        leftovers: Sequence[str | Path] = (),
    ) -> None:
        self.name = name
        fd, log_name = tempfile.mkstemp(prefix=f"pipebench-{_slug(name)}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_name)
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
                    preexec_fn=_pdeathsig_hook(),
                )
            except OSError as exc:
                self.log_path.unlink(missing_ok=True)
                raise SystemFailure(f"{name}: cannot start {argv[0]}: {exc.strerror}") from None
        try:
            self._watchdog = _Watchdog(self._popen.pid, [self.log_path, *leftovers])
        except OSError as exc:  # no watchdog, no server: a crash could leave it running
            self._signal_group(signal.SIGKILL)
            self._popen.wait()
            self.log_path.unlink(missing_ok=True)
            raise SystemFailure(f"{name}: cannot start its watchdog: {exc.strerror}") from None
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
            self._signal_group(signal.SIGCONT)  # a stopped (SIGSTOP) server acts on it now
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
            # Children that outlived the leader (e.g. Python stubs) share its group.
            self._signal_group(signal.SIGKILL)
            self._watchdog.dismiss()
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
