"""Apache Kafka itself as the reference broker: the oracle the compat checks (and pykbroker) answer to.

    with kafka_reference() as kafka:          # sets Kafka up on first use (tests/tools/setup_kafka_broker.sh)
        run_something(kafka.bootstrap_servers)

    python -m compat.reference                # starts it, prints the bootstrap address, Ctrl-C stops it
    python -m compat.reference --compat -q    # starts it and runs `python -m compat <address> -q` against it

A single-node KRaft broker+controller on two free 127.0.0.1 ports, with its storage and log in a temp dir.
The JVM runs in its own process group and gets SIGKILL when this process dies (PR_SET_PDEATHSIG), so it
cannot outlive an interrupted test; on a normal exit it is stopped with SIGTERM, SIGKILL after a timeout.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = REPO_ROOT / "tests" / "tools" / "setup_kafka_broker.sh"
KAFKA_VERSIONS = ("4.4.0", "4.3.1", "4.1.1")  # the order the setup script tries them in
JVM_OPTS = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20
JAVA_MISSING_EXIT = 3

LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaReferenceError(RuntimeError):
    """Kafka could not be set up or did not become ready; the message carries the script's or broker's log."""


class JavaMissing(KafkaReferenceError):
    """No `java` on PATH: the reference broker cannot run here."""


def tools_dir() -> Path:
    return Path(os.environ.get("PYKBROKER_TOOLS_DIR", REPO_ROOT / ".tools"))


def installed_libs() -> Path | None:
    """The libs dir of the first set-up Kafka version (in the setup script's order), or None."""
    for version in KAFKA_VERSIONS:
        home = tools_dir() / f"kafka-{version}"
        if (home / "READY").is_file() and any((home / "libs").glob("kafka_2.13-*.jar")):
            return home / "libs"
    return None


def ensure_kafka(timeout_s: float = 900) -> Path:
    """Runs the setup script unless Kafka is already set up; returns its libs dir."""
    libs = installed_libs()
    if libs is not None:
        return libs
    if shutil.which("java") is None:
        raise JavaMissing(f"java not found on PATH: the Kafka reference broker needs a JRE >= 17 "
                          f"(or run `{SETUP_SCRIPT.relative_to(REPO_ROOT)} --install-deps` as root)")
    env = dict(os.environ, PYKBROKER_TOOLS_DIR=str(tools_dir()))
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=timeout_s,
                          env=env, stdin=subprocess.DEVNULL)
    if proc.returncode == JAVA_MISSING_EXIT:
        raise JavaMissing(proc.stderr.strip())
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not Path(lines[-1]).is_dir():
        raise KafkaReferenceError(f"{SETUP_SCRIPT.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return Path(lines[-1])


def kafka_version(libs: Path) -> str:
    jar = next(libs.glob("kafka_2.13-*.jar"))
    return jar.name[len("kafka_2.13-"):-len(".jar")]


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (all held open at once, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_id() -> str:
    """A Kafka Uuid string: 16 random bytes, url-safe base64 without padding (never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(work: Path, port: int, controller_port: int,
                      overrides: Mapping[str, object] | None = None) -> str:
    """Kafka's own single-node KRaft example settings, with replication factors of 1 and no rebalance delay."""
    props: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(work / "data"),
        "num.partitions": 1,
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
    }
    props.update(overrides or {})
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux), so no JVM outlives its test.

    Linux sends it when the *thread* that started the child ends: enter kafka_reference() from a thread
    that lives as long as the broker should (the main thread, in pytest and the CLI)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


_live: set[int] = set()  # process-group ids still running, for the atexit fallback


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_live):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def java_command() -> str:
    """The java to run Kafka with ($JAVA_HOME/bin/java, else the one on PATH); JavaMissing when none."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise JavaMissing("java not found on PATH: the Kafka reference broker needs a JRE >= 17")
    return java


@dataclass
class RunningKafka:
    bootstrap_servers: str
    port: int
    controller_port: int
    work_dir: Path
    log_path: Path
    version: str
    pid: int
    ready_after_s: float = 0.0
    format_s: float = 0.0
    jvm_opts: tuple[str, ...] = field(default=JVM_OPTS)

    def rss_kib(self) -> int:
        """Resident set size of the broker JVM, from /proc (0 when not available)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def log_tail(self, lines: int = 40, *, problems_only: bool = False) -> str:
        """The last lines of server.log; only WARN/ERROR ones with `problems_only` (INFO is very chatty)."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        if problems_only:
            text = [line for line in text if "] WARN " in line or "] ERROR " in line]
        return "\n".join(text[-lines:])


def _not_ready(bootstrap: str) -> str | None:
    """None once the listener serves ApiVersions and Metadata names a broker (it is unfenced), else why not."""
    from pykbroker.wire_client import WireClient  # the project's raw client: exact requests, no retries
    try:
        client = WireClient(bootstrap, timeout_s=2)
    except OSError as e:
        return f"connect: {e}"
    try:
        versions = client.request(18, 3, {"client_software_name": "compat-reference",
                                          "client_software_version": "1"})
        if versions.error_code != 0:
            return f"ApiVersions error code {versions.error_code}"
        if not client.request(3, 12, {"topics": []}).brokers:
            return "Metadata lists no broker yet"
        return None
    except Exception as e:  # closed while starting, or an answer our codec cannot read: keep polling
        return f"{type(e).__name__}: {e}"
    finally:
        client.close()


def _stop(proc: subprocess.Popen, timeout_s: float) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    try:  # anything else left in its group (there should be nothing)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _live.discard(proc.pid)


TEMP_PREFIX = "kafka-reference-"


def _sweep_stale_dirs() -> None:
    """Removes temp dirs left by runs whose owner was killed (SIGKILL skips the cleanup)."""
    for work in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            owner = int((work / "owner.pid").read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(work, ignore_errors=True)
        except (OSError, ValueError):
            pass  # not ours to judge (no or unreadable pid file, or another user's process)


@contextmanager
def kafka_reference(libs: Path | None = None, *, overrides: Mapping[str, object] | None = None,
                    ready_timeout_s: float = READY_TIMEOUT_S, keep_dir: bool = False,
                    jvm_opts: Sequence[str] = JVM_OPTS) -> Iterator[RunningKafka]:
    """Formats a fresh KRaft storage dir, starts Kafka on free loopback ports and yields once it answers.

    `keep_dir` leaves the temp dir (server.properties, data, server.log) in place after the stop.
    """
    libs = libs or ensure_kafka()
    java = java_command()
    classpath = f"{libs}/*"
    _sweep_stale_dirs()
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    (work / "owner.pid").write_text(str(os.getpid()))
    port, controller_port = free_ports(2)
    config = work / "server.properties"
    config.write_text(server_properties(work, port, controller_port, overrides))
    log_path = work / "server.log"
    (work / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(log=log_path))
    base = [java, *jvm_opts, f"-Dlog4j2.configurationFile={work / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={work}", "-cp", classpath]
    proc: subprocess.Popen | None = None
    try:
        started = time.monotonic()
        fmt = subprocess.run([*base, "kafka.tools.StorageTool", "format", "-t", cluster_id(), "-c", str(config),
                              "--standalone"], capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        if fmt.returncode != 0:
            raise KafkaReferenceError(f"StorageTool format failed ({fmt.returncode}):\n{fmt.stdout}\n{fmt.stderr}")
        format_s = time.monotonic() - started
        with open(work / "stdout.log", "wb") as out:
            proc = subprocess.Popen([*base, "kafka.Kafka", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        _live.add(proc.pid)
        kafka = RunningKafka(f"127.0.0.1:{port}", port, controller_port, work, log_path, kafka_version(libs),
                             proc.pid, format_s=format_s, jvm_opts=tuple(jvm_opts))
        deadline = started + ready_timeout_s
        while (why := _not_ready(kafka.bootstrap_servers)) is not None:
            if proc.poll() is not None:
                stdout = (work / "stdout.log").read_text(errors="replace")[-3000:]
                raise KafkaReferenceError(f"Kafka exited with {proc.returncode} before it was ready:\n"
                                          f"{stdout}\n{kafka.log_tail()}")
            if time.monotonic() > deadline:
                raise KafkaReferenceError(f"Kafka was not ready on {kafka.bootstrap_servers} within "
                                          f"{ready_timeout_s:g} s (last: {why}):\n{kafka.log_tail()}")
            time.sleep(0.2)
        kafka.ready_after_s = time.monotonic() - started
        yield kafka
    finally:
        if proc is not None:
            _stop(proc, STOP_TIMEOUT_S)
        if keep_dir:
            (work / "owner.pid").unlink(missing_ok=True)  # kept on purpose: not for the sweep
        else:
            shutil.rmtree(work, ignore_errors=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.reference", description=(
        "Start Apache Kafka (single-node KRaft, free 127.0.0.1 ports) as the reference broker. Without "
        "--compat: print its bootstrap address and run until Ctrl-C."))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, data, server.log)")
    parser.add_argument("--compat", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="run `python -m compat <bootstrap> ARGS...` against it, then stop; exit with its status")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill PID` stops Kafka and cleans up, like Ctrl-C
        signal.signal(sig, _exit_on_signal)
    try:
        with kafka_reference(keep_dir=args.keep) as kafka:
            print(f"Apache Kafka {kafka.version} ready at {kafka.bootstrap_servers} in {kafka.ready_after_s:.1f} s "
                  f"(format {kafka.format_s:.1f} s), pid {kafka.pid}, RSS {kafka.rss_kib() // 1024} MiB, "
                  f"log {kafka.log_path}", file=sys.stderr, flush=True)
            if args.compat is not None:
                cmd = [sys.executable, "-m", "compat", kafka.bootstrap_servers, *args.compat]
                return subprocess.run(cmd, cwd=REPO_ROOT).returncode
            print(kafka.bootstrap_servers, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    except KafkaReferenceError as e:
        print(f"compat.reference: {e}", file=sys.stderr)
        return JAVA_MISSING_EXIT if isinstance(e, JavaMissing) else 1


if __name__ == "__main__":
    sys.exit(main())
