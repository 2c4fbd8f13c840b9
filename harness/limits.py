"""What this machine lets a run start, so that a scenario asking for more fails at once.

``clients: [1000000]`` used to run for minutes, then fail with "can't start new thread".
Every client is a thread of the harness (or of a client process), and a Thrift server
starts one thread per client too: both come out of the same machine-wide pools.
"""

from __future__ import annotations

import resource
from functools import cache
from pathlib import Path

#: Where Linux states each limit on threads; the first readable cgroup file counts.
_KERNEL_LIMITS = {
    "kernel.pid_max": "/proc/sys/kernel/pid_max",
    "kernel.threads-max": "/proc/sys/kernel/threads-max",
    "cgroup pids.max": "/sys/fs/cgroup/pids.max",
}
#: Per process: each thread's stack takes two memory mappings (the stack and its guard).
_MAP_COUNT = "/proc/sys/vm/max_map_count"


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):  # absent, or "max" (no limit)
        return None


@cache
def thread_budget() -> tuple[int, str]:
    """The most threads one run may ask for, and which limit sets it (for the message).

    Machine-wide limits are halved (the harness's client threads and a server's threads
    share them); the per-process mapping limit is not.
    """
    found: list[tuple[int, str]] = []
    for name, path in _KERNEL_LIMITS.items():
        if (value := _read_int(path)) is not None:
            found.append((value // 2, f"half of {name} {value}"))
    nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if nproc != resource.RLIM_INFINITY:
        found.append((nproc // 2, f"half of ulimit -u {nproc}"))
    if (maps := _read_int(_MAP_COUNT)) is not None:
        found.append((maps // 2, f"vm.max_map_count {maps} / 2 mappings per thread"))
    return min(found, default=(1_000_000, "no limit found"))
