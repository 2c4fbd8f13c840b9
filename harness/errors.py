"""Errors the CLI turns into one clean line and an exit code, never a traceback."""

from __future__ import annotations


class BenchError(Exception):
    """A failure the user can act on; ``str()`` is the whole message."""

    exit_code = 1


class InputError(BenchError):
    """Bad input: a scenario file, an option, a path. Exit code 2."""

    exit_code = 2


class SystemFailure(BenchError):
    """A system could not start, answer or stop."""


class LoadLost(SystemFailure):
    """A load host on a cluster node (its actor, or the node itself) was lost: the point
    in progress is void, but the system is not to blame and goes on with the next point."""


def raise_if_interrupted(exc: BaseException) -> None:
    """Raise the interruption (Ctrl-C, SIGTERM, exit) that ``exc`` hides, if it hides one.

    An interruption raised while C code runs (a Ray call, a Cython constructor) can come
    back wrapped: ``SystemError: <built-in method ...> returned a result with an exception
    set``, the interruption as its context. Taken for a failing system, it made a Ctrl-C
    during a ``--cluster`` run fail the system and go on with the next one."""
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if not isinstance(seen, Exception | GeneratorExit):
            raise seen
        seen = seen.__cause__ or seen.__context__
