"""Load generators and whole runs spread over a Ray cluster (the optional ``distributed`` extra).

Nothing here imports Ray at module level: :func:`require_ray` does, when a run asks for a
cluster, so pipebench without the extra works and a run asking for a cluster without it
fails with one line naming the extra.
"""

from __future__ import annotations

from types import ModuleType

from harness.errors import InputError


def require_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "--cluster: Ray is not installed: install the extra "
            "`pip install -e '.[distributed]'` (or `scripts/bootstrap.sh distributed`)"
        ) from None
    return ray
