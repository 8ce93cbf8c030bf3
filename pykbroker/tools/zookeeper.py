"""A throwaway standalone ZooKeeper for tests and local clusters: free 127.0.0.1 port, temp data dir.

    with zookeeper_server() as zk:       # sets ZooKeeper up on first use (tests/tools/setup_zookeeper.sh)
        connect = zk.connect + "/pyk"    # a chroot per cluster

The JVM runs in its own process group, gets SIGKILL when the thread that started it dies
(PR_SET_PDEATHSIG) and is stopped (SIGTERM, then SIGKILL) on exit, so it never outlives a test.
tickTime is 200 ms so that sessions as short as 400 ms are allowed (the cluster tests use a few seconds).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "tests" / "tools" / "setup_zookeeper.sh"
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
JVM_OPTS = ("-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
TICK_MS = 200


class ZooKeeperError(RuntimeError):
    """ZooKeeper could not be set up or did not start; the message carries the script's or server's output."""


def classpath(timeout_s: float = 900) -> str:
    """The class path of a ZooKeeper server, installing it on first use (the set-up script)."""
    if shutil.which("java") is None:
        raise ZooKeeperError("java not found on PATH: ZooKeeper needs a JRE")
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ZooKeeperError(f"{SETUP_SCRIPT.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return lines[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class RunningZooKeeper:
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes]
    started_in_s: float

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float) -> None:
    """Ready when a session can be opened: the 4-letter `srvr` command answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ZooKeeperError(f"ZooKeeper exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"srvr")
                if s.recv(64).startswith(b"Zookeeper version"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise ZooKeeperError(f"ZooKeeper not ready on port {port} within {timeout_s} s; see {log}")


@contextmanager
def zookeeper_server(work_dir: Path | None = None, timeout_s: float = 60) -> Iterator[RunningZooKeeper]:
    """A standalone ZooKeeper on a free port, stopped and its data removed on exit (unless work_dir is given)."""
    cp = classpath()
    owned = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="pykbroker-zk-")) if work_dir is None else work_dir
    (work / "data").mkdir(parents=True, exist_ok=True)
    port = _free_port()
    cfg = work / "zoo.cfg"
    cfg.write_text(f"tickTime={TICK_MS}\ndataDir={work / 'data'}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                   "maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=srvr,ruok\n"
                   f"minSessionTimeout={2 * TICK_MS}\nmaxSessionTimeout=60000\n")
    log = work / "zookeeper.log"
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen([java, *JVM_OPTS, "-cp", cp, MAIN_CLASS, str(cfg)], stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    try:
        _wait_ready(proc, port, log, timeout_s)
        yield RunningZooKeeper(port, work, proc, time.monotonic() - started)
    finally:
        _stop(proc)
        if owned:
            shutil.rmtree(work, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
