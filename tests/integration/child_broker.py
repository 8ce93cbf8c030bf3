"""A broker in a child process, `python -m pykbroker serve` as a user starts it, for fault tests
that SIGKILL it and start it again on the same port and data directory."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from pykbroker.tools.pipes import readable_within


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildBroker:
    """`python -m pykbroker serve` on a fixed port, as a user starts it; SIGKILLed and started again."""

    def __init__(self, data_dir: Path, settings: list[str], log_level: str = "WARNING") -> None:
        self.data_dir, self.settings, self.log_level = data_dir, settings, log_level
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = (data_dir.parent / "broker-stderr.log").open("ab")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20) -> None:
        command = [sys.executable, "-m", "pykbroker", "serve", "--listen", self.bootstrap,
                   "--data-dir", str(self.data_dir), "--log-level", self.log_level]
        for item in self.settings:
            command += ["--set", item]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.stderr)
        assert self.proc.stdout is not None
        ready = readable_within(self.proc.stdout, timeout_s)
        line = self.proc.stdout.readline() if ready else b""
        if b"pykbroker ready" not in line:
            self.kill()
            raise RuntimeError(f"broker did not start within {timeout_s} s: {line!r}; "
                               f"see {self.stderr.name}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        self.stderr.close()
