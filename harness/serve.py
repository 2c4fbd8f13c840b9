"""``bench serve``: one system of a scenario, started exactly as ``bench run`` starts it,
kept up for other tools (or another ``bench run`` pointed at it) until Ctrl-C / SIGTERM.

The system is created, started, checked for correct replies and watched idle by the same
:class:`~harness.rounds.Contender` the runner uses; then its addresses are printed and the
process waits, checking every second that the server still lives. A signal (or the
server's death) ends the wait, and everything the system started is stopped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from harness.errors import InputError
from harness.rounds import Contender
from harness.scenario import Scenario, SystemSpec
from harness.system import SystemUnavailable

#: Seconds between liveness checks of the served system while waiting for a signal.
CHECK_EVERY_S = 1.0


def pick_system(scenario: Scenario, wanted: str, where: str) -> SystemSpec:
    """The scenario's system labelled (or else named) ``wanted``."""
    for spec in scenario.systems:
        if spec.column == wanted:
            return spec
    named = [spec for spec in scenario.systems if spec.name == wanted]
    if len(named) == 1:
        return named[0]
    columns = ", ".join(spec.column for spec in scenario.systems)
    raise InputError(f"{where}: --system: {wanted!r} is not one system of it (it has: {columns})")


def serve(scenario: Scenario, spec: SystemSpec, say: Callable[[str], None]) -> None:
    """Start ``spec``, print where it listens, wait for SIGINT/SIGTERM, stop it."""
    contender = Contender.create(scenario, spec)
    if contender.system.remote:
        raise InputError(f"{spec.column}: options point at a running server: nothing to serve")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            contender.start(first=True)
        except SystemUnavailable as exc:
            raise SystemUnavailable(f"{spec.column}: cannot run on this machine: {exc}") from None
        endpoints = contender.system.endpoints()
        if not endpoints:
            raise InputError(
                f"{spec.column}: runs inside the harness's own process: nothing to serve "
                "(serve a system with a server, e.g. pipe+thrift)"
            )
        say(f"serving {spec.column} of scenario {scenario.name}:")
        for key, value in endpoints.items():
            say(f"  {key}: {value}")
        say("ready; Ctrl-C or SIGTERM stops it")
        while not stop.wait(CHECK_EVERY_S):
            contender.system.check_alive()
    finally:
        contender.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say(f"stopped {spec.column}")
