"""Each load node's clock against the coordinator's, measured by round trips.

Latency never crosses machines: a sample's send and reply are both read on the load node's
own monotonic clock. Only *when* a request was sent must be compared across nodes (which
window it falls in), so the coordinator hands out start, stop and window times on its own
monotonic clock shifted by each node's offset, and shifts the nodes' samples back.

The offset is measured as NTP does: the coordinator reads its clock (``t1``), asks the node
for its clock (``n``), reads its clock again (``t2``); assuming the request and the reply
took equally long, the node read ``n`` at ``(t1 + t2) / 2``, give or take half the round
trip. Of several tries the one with the shortest round trip is kept (least queueing on the
way). The monotonic clocks are compared directly, not the wall clocks: an NTP step of a
node's wall clock during a run cannot move its windows. The wall-clock offset is measured
alongside and recorded (it shows how well the nodes' NTP agrees, nothing depends on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.loadgen import clock

#: Round trips per measurement; the shortest one is kept.
TRIES = 7


@dataclass(frozen=True)
class Offset:
    """``node clock - coordinator clock``, within ``± uncertainty_ns``."""

    offset_ns: int
    uncertainty_ns: int
    #: The same for the wall clocks (``time.time_ns``), for the record only.
    wall_offset_ns: int

    def to_node(self, t_ns: int) -> int:
        """A coordinator time on the node's clock."""
        return t_ns + self.offset_ns

    def suspect(self, window_s: float) -> bool:
        """Too uncertain to place a sample in the right window: more than a tenth of one."""
        return self.uncertainty_ns > window_s * 1e9 / 10


@dataclass(frozen=True)
class Reading:
    """One round trip: coordinator clock before and after, and the node's two clocks."""

    sent_ns: int
    received_ns: int
    node_ns: int
    node_wall_ns: int
    wall_ns: int


def estimate(readings: list[Reading]) -> Offset:
    """The offset from the reading with the shortest round trip."""
    best = min(readings, key=lambda r: r.received_ns - r.sent_ns)
    half = (best.received_ns - best.sent_ns) // 2
    return Offset(
        offset_ns=best.node_ns - (best.sent_ns + half),
        uncertainty_ns=half,
        wall_offset_ns=best.node_wall_ns - best.wall_ns,
    )


def measure(ask: Callable[[], tuple[int, int]], tries: int = TRIES) -> Offset:
    """Measure with ``ask()``, a round trip returning the node's (monotonic, wall) clocks."""
    readings = []
    for _ in range(tries):
        sent, wall = clock(), time.time_ns()
        node_ns, node_wall_ns = ask()
        received = clock()
        # The wall reading is taken at ``sent``; shift it to the midpoint like the other.
        readings.append(
            Reading(sent, received, node_ns, node_wall_ns, wall + (received - sent) // 2)
        )
    return estimate(readings)
