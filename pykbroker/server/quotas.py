"""max.connections and max.connections.per.ip(.overrides), as Kafka's ConnectionQuotas applies them.

Over max.connections the acceptor stops accepting until a connection closes (new ones wait in the
kernel's backlog); over the per-IP limit a new connection is accepted and closed at once.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter

import trio


class ConnectionQuotas:
    def __init__(self, max_connections: int, max_per_ip: int, per_ip_overrides: dict[str, int] | None = None) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.overrides = {_canonical(host): count for host, count in (per_ip_overrides or {}).items()}
        self.total = 0
        self.per_ip: Counter[str] = Counter()
        self._changed = trio.Event()

    def limit_for(self, ip: str) -> int:
        return self.overrides.get(_canonical(ip), self.max_per_ip)

    async def wait_for_slot(self) -> None:
        """Return once the broker-wide count is below max.connections."""
        while self.total >= self.max_connections:
            await self._changed.wait()

    def try_open(self, ip: str) -> bool:
        """Count a new connection from `ip`; False (nothing counted) when that IP is at its limit."""
        key = _canonical(ip)
        if self.per_ip[key] >= self.limit_for(key):
            return False
        self.per_ip[key] += 1
        self.total += 1
        return True

    def closed(self, ip: str) -> None:
        key = _canonical(ip)
        self.per_ip[key] -= 1
        if self.per_ip[key] <= 0:
            del self.per_ip[key]
        self.total -= 1
        self._changed.set()
        self._changed = trio.Event()


def parse_overrides(text: str) -> dict[str, int]:
    """Kafka's max.connections.per.ip.overrides: "host:count,host:count" (IPv6 hosts may be [bracketed])."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, count = item.rpartition(":")
        if not sep or not host or not count.strip().isdigit():
            raise ValueError(f"max.connections.per.ip.overrides entry {item!r}: expected HOST:COUNT")
        out[host.strip().strip("[]")] = int(count)
    return out


async def resolve_overrides(overrides: dict[str, int]) -> dict[str, int]:
    """Host names in the overrides -> their address, looked up once at start-up (as Kafka's
    InetAddress.getByName), off the event loop; a name that does not resolve is kept as given."""
    out: dict[str, int] = {}
    for host, count in overrides.items():
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                info = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                host = info[0][4][0]
            except OSError:
                pass
        out[host] = count
    return out


def _canonical(host: str) -> str:
    """One key per address: IPv4-mapped IPv6 written as IPv4."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)
