"""Cleans up after one server if the harness dies without stopping it (e.g. SIGKILL).

``PR_SET_PDEATHSIG`` kills the server itself with the harness, but not what the server
started: tritonserver's Python stubs are its children, survive it, and keep their
``/dev/shm`` regions. So every :class:`harness.process.ServerProcess` starts this small
process beside its server, in a session of its own (Ctrl-C in the terminal does not reach
it). It blocks until either

* the harness writes a byte on the stop pipe: the server was stopped normally, nothing to
  do; or
* the stop pipe reaches end-of-file, or the harness's pidfd becomes readable: the harness
  is gone (the pidfd also catches a forked child that still holds the pipe open).

In the second case it SIGKILLs the server's whole process group, waits for it to empty and
removes the leftovers it was given (log file, work folder, shared-memory globs).

Run as ``python -I -S watchdog.py PGID STOP_FD HARNESS_PIDFD [LEFTOVER_GLOB ...]``; it uses
the standard library only, so it starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import select
import shutil
import signal
import sys
import time

GROUP_EXIT_TIMEOUT_S = 5.0


def harness_gone(stop_fd: int, harness_fd: int) -> bool:
    """Block until the harness says "stopped" (False) or disappears (True)."""
    poller = select.poll()
    poller.register(stop_fd, select.POLLIN)
    poller.register(harness_fd, select.POLLIN)
    ready = {fd for fd, _ in poller.poll()}
    if harness_fd in ready:
        return True
    return os.read(stop_fd, 1) == b""


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group and wait (bounded) until none is left."""
    deadline = time.monotonic() + GROUP_EXIT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def remove(patterns: list[str]) -> None:
    for pattern in patterns:
        for path in glob.glob(pattern):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def main(argv: list[str]) -> None:
    pgid, stop_fd, harness_fd = (int(arg) for arg in argv[:3])
    if harness_gone(stop_fd, harness_fd):
        kill_group(pgid)
        remove(argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
