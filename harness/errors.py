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
