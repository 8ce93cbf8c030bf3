"""A minimal blocking Kafka client over pykbroker's own codec: exact bytes on the wire for tests,
benchmarks and the command line (no retries, no metadata routing: one connection, one broker)."""

from __future__ import annotations

import socket
import struct
from typing import Any

from pykbroker.protocol.frame import decode_response, encode_request
from pykbroker.protocol.primitives import Msg


class WireClient:
    def __init__(self, bootstrap: str, timeout_s: float = 10) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.correlation_id = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, api_key: int, version: int, body: Any, client_id: str | None = "wire-test") -> int:
        self.correlation_id += 1
        self.sock.sendall(encode_request(api_key, version, self.correlation_id, client_id, body))
        return self.correlation_id

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._exactly(4))[0]
        return self._exactly(size)

    def receive(self, api_key: int, version: int) -> tuple[int, Msg]:
        return decode_response(api_key, version, self.read_frame())

    def request(self, api_key: int, version: int, body: Any) -> Msg:
        sent = self.send(api_key, version, body)
        correlation_id, response = self.receive(api_key, version)
        assert correlation_id == sent
        return response

    def is_closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return True

    def _exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return bytes(out)
