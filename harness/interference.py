"""Other work on the machine during a turn: the CPU it took, read from the kernel.

A turn measured while another process (a test run, a compiler, the hypervisor taking
CPU back as "steal") used the machine measures the neighbour as much as the system, and
no statistic afterwards can tell the two apart. The kernel can: ``/proc/stat`` counts the
machine's busy CPU time, the harness knows its own process tree (its client threads and
processes, and every server it started, which are its children), and the difference is
everybody else. :mod:`harness.rounds` takes a disturbed turn again, and a record says how
much of the machine others used, so an imprecise point says why.
"""

from __future__ import annotations

import os

import psutil

#: /proc/stat fields that are CPU work: user, nice, system, irq, softirq and steal (time
#: the hypervisor gave this VM's CPUs to someone else); not idle and iowait.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all CPUs together)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()[1:]  # the first line sums every CPU
    return sum(int(fields[i]) for i in _BUSY_FIELDS) * _TICK_S


def own_cpu_s(pid: int | None = None) -> float:
    """CPU seconds used so far by a process and all its descendants (default: this one),
    those that exited and were reaped included (the kernel adds them to their parent's
    children times), so a client process closing does not turn into "others"."""
    try:
        root = psutil.Process(pid or os.getpid())
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for member in family:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile
        total += times.user + times.system + times.children_user + times.children_system
    return total


def others_cpu_s() -> float:
    """CPU seconds the machine spent on anything but this process tree (a running
    total: only differences between two readings mean something)."""
    return machine_busy_s() - own_cpu_s()


def machine_cpus() -> int:
    return os.cpu_count() or 1
