"""Cleans up after one server if the harness dies without stopping it (e.g. SIGKILL).

``PR_SET_PDEATHSIG`` kills the server itself with the harness, but not what the server
started: tritonserver's Python stubs are its children, survive it, and keep their
``/dev/shm`` regions. So every :class:`harness.process.ServerProcess` starts this small
process *before* its server, in a session of its own (Ctrl-C in the terminal does not reach
it): no moment exists at which killing the harness leaves a server unwatched. The server's
process writes its PID (its process group's too: it leads a session) on the PID pipe as its
first act after the fork, before it runs the server's program. The watchdog blocks until
either

* the harness writes a byte on the stop pipe: the server was stopped normally, nothing to
  do; or
* the stop pipe reaches end-of-file, or the harness's pidfd becomes readable: the harness
  is gone (the pidfd also catches a forked child that still holds the pipe open).

In the second case it reads the server's PID (none if the harness died before forking it),
first lets the server stop by itself (the kernel sent it SIGTERM as its parent died;
tritonserver removes its Python backend's ``/tmp/python_env_*`` folder only on a graceful
shutdown after its models loaded), SIGKILLs the whole group after ``GRACE_S``, waits for it
to empty, and removes the leftovers it was given (work folder, shared-memory globs) and the
folders the server made at a fixed path while it started (see
:func:`remove_startup_folders`). ``PID_FD`` ``-`` guards no server, only leftovers: a temp
folder of the harness, removed once no server or watchdog that works in it is left.

Run as ``python -I -S watchdog.py PID_FD STOP_FD HARNESS_PIDFD TERM [--startup PATTERN UNTIL
SINCE] [LEFTOVER_GLOB ...]``; ``TERM`` is 1 if the watchdog must send SIGTERM itself (a
server started from a thread other than the main one has no ``PR_SET_PDEATHSIG``:
tritonserver cuts its graceful shutdown short on a second SIGTERM). It uses the standard
library only, so it starts in a few milliseconds.
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
GRACE_S = 12.0


def harness_gone(stop_fd: int, harness_fd: int) -> bool:
    """Block until the harness says "stopped" (False) or disappears (True)."""
    poller = select.poll()
    poller.register(stop_fd, select.POLLIN)
    poller.register(harness_fd, select.POLLIN)
    ready = {fd for fd, _ in poller.poll()}
    if harness_fd in ready:
        return True
    return os.read(stop_fd, 1) == b""


def server_pid(pid_fd: int) -> int | None:
    """The server's PID from the PID pipe; None if no server was started: the pipe reached
    end-of-file empty (every writer gone: the harness died before the fork, or the child
    exec'd, which closes its end, without a word), or nothing came within ``GRACE_S`` (a
    stray fork of the harness may hold the pipe open; the server's own write comes right
    after its fork)."""
    data = b""
    deadline = time.monotonic() + GRACE_S
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([pid_fd], [], [], remaining)[0]:
            return None
        chunk = os.read(pid_fd, 32)
        if not chunk:
            return None
        data += chunk
    return int(data)


def exited(pid: int) -> bool:
    """Gone, or a zombie nobody reaps yet (its parent, the harness, is dead)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def stop_gracefully(leader: int, term: bool) -> None:
    """SIGTERM the group's leader if the kernel did not, SIGCONT it (a stopped one acts on
    the signal only then) and give it ``GRACE_S`` to shut down by itself."""
    try:
        if term:
            os.kill(leader, signal.SIGTERM)
        os.kill(leader, signal.SIGCONT)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + GRACE_S
    while not exited(leader) and time.monotonic() < deadline:
        time.sleep(0.02)


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
    """Remove what the patterns match; a folder that a dying process still wrote into while
    it was being removed is removed again (bounded)."""
    for pattern in patterns:
        for path in glob.glob(pattern):
            if os.path.isdir(path) and not os.path.islink(path):
                deadline = time.monotonic() + GROUP_EXIT_TIMEOUT_S
                while os.path.lexists(path) and time.monotonic() < deadline:
                    shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def startup_end(until: str) -> float | None:
    """When a server's start-up ended: its first file matching ``until`` was made (e.g. its
    first Python stub's shared-memory region); None if it has none (not there yet)."""
    made = []
    for path in glob.glob(until):
        with contextlib.suppress(OSError):
            made.append(os.stat(path).st_ctime)
    return min(made, default=None)


def remove_startup_folders(pattern: str, since: float, end: float) -> None:
    """Remove the empty folders matching ``pattern`` made between ``since`` and ``end``.

    Triton's Python backend makes ``/tmp/python_env_XXXXXX`` (a fixed place: ``TMPDIR`` is
    ignored) as it loads, before its first stub starts, and removes it only on a graceful
    shutdown after its models loaded. No process holds it open and its name is random, so
    this server's folder is told apart by when it was made: after the launch, before the
    first stub. ``rmdir`` never removes a folder that holds anything (a server's extracted
    environments). The 0.1 s margins cover the kernel's coarse file clock.
    """
    for folder in glob.glob(pattern):
        with contextlib.suppress(OSError):
            if since - 0.1 <= os.stat(folder).st_ctime <= end + 0.1:
                os.rmdir(folder)


def end_users(patterns: list[str], patience: float) -> None:
    """Wait (``patience`` seconds at most) until no other process names a matched path,
    then SIGKILL those that still do and wait (bounded) until they are gone: they would
    write into the folder after it was removed (and make it again).

    Users are the servers working in the harness's temp folder and their watchdogs, which
    are still stopping them gracefully (removing a server's files under it spoils its
    shutdown), or the processes of a local Ray cluster (see :func:`users`). A zombie names
    nothing: it has exited."""
    paths = [path.encode() for pattern in patterns for path in glob.glob(pattern)]
    if paths and not _unused_within(paths, patience):
        for pid in users(paths):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _unused_within(paths, GROUP_EXIT_TIMEOUT_S)


def _unused_within(paths: list[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while users(paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def users(paths: list[bytes]) -> list[int]:
    """Processes other than this one naming one of ``paths`` in their command line, their
    environment or a file they hold open (a retitled Ray agent overwrote both the others:
    its log files, opened in the folder, still name it)."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _names(pid, paths)]


def _names(pid: str, paths: list[bytes]) -> bool:
    if int(pid) == os.getpid():
        return False
    for part in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{part}", "rb") as file:
                text = file.read()
        except OSError:
            continue
        if any(path in text for path in paths):
            return True
    try:
        fds = os.listdir(f"/proc/{pid}/fd".encode())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(b"/proc/%s/fd/%s" % (pid.encode(), fd))
        except OSError:
            continue
        if any(target.startswith(path) for path in paths):
            return True
    return False


def main(argv: list[str]) -> None:
    pid_fd = None if argv[0] == "-" else int(argv[0])
    stop_fd, harness_fd, term = int(argv[1]), int(argv[2]), argv[3] == "1"
    startup, leftovers = None, argv[4:]
    if leftovers[:1] == ["--startup"]:
        startup, leftovers = leftovers[1:4], leftovers[4:]
    if harness_gone(stop_fd, harness_fd):
        if pid_fd is None:
            end_users(leftovers, GRACE_S + GROUP_EXIT_TIMEOUT_S)
        elif (pgid := server_pid(pid_fd)) is not None:
            stop_gracefully(pgid, term)
            kill_group(pgid)
        else:
            startup = None  # no server was started: it made no folder
        if startup:  # before the leftovers: they may hold the file that ends the start-up
            pattern, until, since = startup
            end = startup_end(until) or time.time()  # the group is gone: it makes no more
            remove_startup_folders(pattern, float(since), end)
        remove(leftovers)


if __name__ == "__main__":
    main(sys.argv[1:])
