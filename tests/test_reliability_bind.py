"""Every server the harness starts listens on 127.0.0.1 only, never on all interfaces.

A benchmark runs on shared machines; an inference server reachable from the network is an
open door. The check reads the listening sockets of each server and all its children
(Triton's stubs included) from the kernel, so a flag dropped from an argv shows up.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import psutil
import pytest

from harness.system import create_system

pytestmark = pytest.mark.usefixtures("no_leaks")

#: The systems that launch a server process; in-process systems have nothing to bind.
SERVER_SYSTEMS = {"thrift": 1, "pipe+thrift": 1, "triton": 3, "triton-rpc": 3}


def ipv4(address: str) -> str:
    """gRPC listens on an IPv6 socket bound to ``::ffff:127.0.0.1``: that is 127.0.0.1."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def listening_addresses(pids: list[int]) -> list[tuple[str, int]]:
    found = []
    for pid in pids:
        server = psutil.Process(pid)
        for process in [server, *server.children(recursive=True)]:
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN or conn.type == socket.SOCK_DGRAM:
                    found.append((ipv4(conn.laddr.ip), conn.laddr.port))
    return found


@pytest.mark.parametrize(("name", "listeners"), sorted(SERVER_SYSTEMS.items()))
def test_servers_listen_on_loopback_only(name, listeners, make_scenario):
    scenario = make_scenario(systems=[name], serving={"instances": 2})
    with create_system(scenario.systems[0], scenario) as system:
        system.start()
        system.ready(60)
        # Triton opens its metrics listener a moment after it reports ready: wait for it.
        deadline = time.monotonic() + 60
        addresses = listening_addresses(system.server_pids())
        while len(addresses) < listeners and time.monotonic() < deadline:
            time.sleep(0.1)
            addresses = listening_addresses(system.server_pids())
    assert len(addresses) == listeners, addresses  # HTTP + gRPC + metrics for Triton
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses
