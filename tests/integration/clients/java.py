"""Drive the Apache Kafka Java client (kafka-clients 3.9.1) from pytest through ``tests/java/KafkaCheck.java``.

Usage in a test::

    from integration.clients.java import java_available, run_java

    reason = java_available()
    if reason:
        pytest.skip(reason)
    out = run_java(["produce", "--bootstrap", bootstrap, "--topic", "t", "--count", "1000"])
    assert out["acked"] == 1000

The jars and compiled classes live in ``<repo>/.tools`` (override with ``$PYKBROKER_TOOLS_DIR``); the first
call runs ``tests/tools/setup_java_client.sh`` to create them (about 10 s and a 92 MB download, once).
KafkaCheck prints one JSON object per run; see the header of ``tests/java/KafkaCheck.java`` for commands.
Client logging goes to stderr, level from ``$KAFKACHECK_LOG`` (off|error|warn|info|debug|trace; default warn).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOLS_DIR = Path(os.environ.get("PYKBROKER_TOOLS_DIR", REPO_ROOT / ".tools"))
JAVA_LIB = TOOLS_DIR / "java-lib"
JAVA_CLASSES = TOOLS_DIR / "java-classes"
JAVA_SOURCES = REPO_ROOT / "tests" / "java"
SETUP_SCRIPT = REPO_ROOT / "tests" / "tools" / "setup_java_client.sh"
JARS = ("kafka-clients.jar", "slf4j-api.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar")
MAIN_CLASS = "KafkaCheck"

# Small heap, fast startup: each run is one short-lived JVM.
JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")

_setup_lock = threading.Lock()


class JavaClientError(RuntimeError):
    """KafkaCheck failed, timed out or printed no JSON. ``result`` holds its JSON line when it printed one."""

    def __init__(self, message: str, *, returncode: int | None, stdout: str, stderr: str, result: dict | None):
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.result = result


def java_available() -> str | None:
    """None when ``java`` and ``javac`` are on PATH, else the reason to skip (the only reason to skip)."""
    missing = [tool for tool in ("java", "javac") if shutil.which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not found on PATH; install a JDK >= 11 "
                f"(e.g. `{SETUP_SCRIPT.relative_to(REPO_ROOT)} --install-jdk`)")
    return None


def _is_set_up() -> bool:
    stamp = JAVA_CLASSES / f"{MAIN_CLASS}.class"
    if not stamp.is_file() or not all((JAVA_LIB / jar).is_file() for jar in JARS):
        return False
    built = stamp.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in JAVA_SOURCES.rglob("*.java"))


def ensure_java_client(timeout: float = 600) -> None:
    """Run the setup script unless the jars are present and the classes are newer than the sources.

    Raises RuntimeError (with the script's output) when setup fails; call ``java_available()`` first.
    """
    with _setup_lock:
        if _is_set_up():
            return
        env = dict(os.environ, PYKBROKER_TOOLS_DIR=str(TOOLS_DIR))
        proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not _is_set_up():
            raise RuntimeError(f"{SETUP_SCRIPT} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def java_command(args: list[str], classpath: str | None = None) -> list[str]:
    """The full command line for ``KafkaCheck args...`` (after ``ensure_java_client()``, or on `classpath`)."""
    classpath = classpath or os.pathsep.join([str(JAVA_CLASSES), str(JAVA_LIB / "*")])
    return ["java", *JVM_OPTS, "-cp", classpath, MAIN_CLASS, *map(str, args)]


def _last_json_line(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def run_java(args: list[str], timeout: float = 60, *, check: bool = True, env: dict | None = None,
             classpath: str | None = None) -> dict:
    """Run ``KafkaCheck args...`` and return its JSON result.

    ``timeout`` bounds the JVM process (KafkaCheck's own ``--timeout-ms`` defaults to 30 s). With ``check``
    (default) a non-zero exit, a missing JSON line or ``"ok": false`` raises JavaClientError carrying stdout,
    stderr and the parsed result; with ``check=False`` the parsed result is returned as is (``"ok"`` tells),
    plus ``"returncode"``. Exit codes: 0 ok, 1 failed, 2 usage, 3 timeout. ``classpath``: another
    build of KafkaCheck (the Kafka 4.x client, tests/tools/setup_java_client_4x.sh) instead of 3.9.1.
    """
    reason = java_available()
    if reason:
        raise RuntimeError(reason)
    if classpath is None:
        ensure_java_client()
    cmd = java_command(args, classpath)
    run_env = dict(os.environ, **(env or {}))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise JavaClientError(f"KafkaCheck {' '.join(map(str, args))} did not finish within {timeout} s\n"
                              f"stderr:\n{err[-4000:]}", returncode=None, stdout=out, stderr=err,
                              result=_last_json_line(out)) from None
    result = _last_json_line(proc.stdout)
    if not check and result is not None:
        result["returncode"] = proc.returncode
        return result
    if proc.returncode != 0 or result is None or not result.get("ok", False):
        what = result.get("error") if result else "no JSON result line"
        raise JavaClientError(
            f"KafkaCheck {' '.join(map(str, args))} failed (exit {proc.returncode}): {what}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}",
            returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, result=result)
    return result


def produce_then_consume(run: Callable[..., dict], bootstrap: str, topic: str, count: int, partitions: int = 3,
                         produce_args: tuple[str, ...] = (), consume_args: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Create `topic`, produce `count` records and consume them back with `run` (a KafkaCheck runner).

    Checks that every record came back with the same bytes; returns both JSON results for more checks.
    """
    run(["admin", "--bootstrap", bootstrap, "create-topic", topic, "--partitions", str(partitions)])
    produced = run(["produce", "--bootstrap", bootstrap, "--topic", topic, "--count", str(count), *produce_args])
    assert produced["acked"] == count and produced["failed"] == 0, produced
    consumed = run(["consume", "--bootstrap", bootstrap, "--topic", topic, "--count", str(count), *consume_args])
    assert consumed["count"] == count and consumed["value_crc_sum"] == produced["value_crc_sum"], consumed
    return produced, consumed
