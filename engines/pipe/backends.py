"""Backends: the code that computes, registered by name.

A backend is a class with ``init(params)`` (run once, on the instance's own worker) and
``forward(batch) -> list`` (one reply per request, in order). One object is made per
instance, so a backend never sees two batches at once. Besides registered names, a
backend may be named ``"module:Class"``: the user's own class, imported on first use
(from the current directory too, where a user's code usually is).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

_REGISTRY: dict[str, type[Backend]] = {}


class Backend:
    """Base class of Python backends; subclasses override :meth:`forward`."""

    #: True if ``forward`` must run on the instance's own worker thread (e.g. it uses
    #: thread-local GPU state). Otherwise an idle instance may be run by the calling
    #: thread directly, which saves a thread hand-off per request.
    thread_affine: bool = False

    def init(self, params: dict[str, Any]) -> None:
        """Prepare this instance (load a model...). ``params`` is the node's ``params``."""

    def forward(self, batch: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


def register_backend(name: str, cls: type[Backend]) -> None:
    """Make ``cls`` available to :class:`~engines.pipe.Pipe` configs as ``backend: name``."""
    _REGISTRY[name] = cls


def backend_class(name: str) -> type[Backend] | None:
    """The registered backend, or the class ``"module:Class"`` names (None: neither)."""
    if name in _REGISTRY or ":" not in name:
        return _REGISTRY.get(name)
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        if os.getcwd() in sys.path:
            return None
        sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            return None
    found = getattr(module, attr, None)
    if not isinstance(found, type) or not callable(getattr(found, "forward", None)):
        return None
    return found


def backend_names() -> list[str]:
    return sorted(_REGISTRY)
