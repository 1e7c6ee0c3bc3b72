"""Which network addresses a running engine listens on, and which of them reach beyond the machine.

Every embedded engine is meant to listen on loopback only unless ``Settings.listen_host`` opens
it up; :func:`exposed_sockets` is the check (used by the tests on the real engines).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import psutil

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind


@dataclass(frozen=True)
class ListeningSocket:
    """One listening TCP (or bound, unconnected UDP) socket of a process."""

    pid: int
    process: str
    protocol: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the socket (127.0.0.0/8, ::1, ::ffff:127.x)."""
        ip = ipaddress.ip_address(self.address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its descendants (engines fork workers: uvicorn, Python UDF workers, ...)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def listening_sockets(pid: int) -> list[ListeningSocket]:
    """Every listening TCP socket and bound UDP socket of ``pid``'s process tree."""
    found: list[ListeningSocket] = []
    for process in process_tree(pid):
        try:
            name = process.name()
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for conn in connections:
            if not conn.laddr:
                continue
            tcp_listener = conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN
            udp_bound = conn.type == socket.SOCK_DGRAM and not conn.raddr
            if tcp_listener or udp_bound:
                protocol = "tcp" if conn.type == socket.SOCK_STREAM else "udp"
                found.append(ListeningSocket(process.pid, name, protocol, conn.laddr.ip, conn.laddr.port))
    return found


def exposed_sockets(pid: int) -> list[ListeningSocket]:
    """The sockets of ``pid``'s process tree that other machines could reach."""
    return [s for s in listening_sockets(pid) if not s.loopback]


def advertised_host(listen_host: str) -> str:
    """The address a broker tells its clients to dial: this host's name once it listens on every interface."""
    return socket.getfqdn() if listen_host in WILDCARD_HOSTS else listen_host
