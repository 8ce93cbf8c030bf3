"""The server's settings, under the Kafka config they come from (the broker fills them in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

INT32_MAX = 2147483647


@dataclass(frozen=True)
class ServerLimits:
    #: socket.request.max.bytes: largest frame, checked before its body is read.
    max_request_bytes: int = 104857600
    #: connections.max.idle.ms: close a connection with nothing read or sent for this long.
    connections_max_idle_ms: int = 600000
    #: max.connections: stop accepting while this many are open.
    max_connections: int = INT32_MAX
    #: max.connections.per.ip (+ .overrides): close a new connection over its IP's limit.
    max_connections_per_ip: int = INT32_MAX
    max_connections_per_ip_overrides: Mapping[str, int] = field(default_factory=dict)
    #: queued.max.request.bytes: request bodies in memory across all connections (-1: unbounded).
    queued_max_request_bytes: int = -1
