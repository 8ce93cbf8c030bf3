"""Drive ``kcat`` (librdkafka's command-line client) from pytest.

Usage in a test::

    from integration.clients.kcat import kcat_available, run_kcat

    reason = kcat_available()
    if reason:
        pytest.skip(reason)
    run_kcat(["-b", bootstrap, "-P", "-t", "t"], input="a\\nb\\n")
    lines = run_kcat(["-b", bootstrap, "-C", "-t", "t", "-e", "-o", "beginning", "-q"]).splitlines()

When kcat is missing, the first ``kcat_available()`` call runs ``tests/tools/setup_kcat.sh`` (apt-get install,
needs root) and only reports a reason to skip when that cannot install it. Debian 12's kcat is 1.7.1 built on
librdkafka 2.0.2 (see ``kcat_version()``).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
SETUP_SCRIPT = REPO_ROOT / "tests" / "tools" / "setup_kcat.sh"

_lock = threading.Lock()
_setup_result: str | None = None
_setup_tried = False


class KcatError(RuntimeError):
    """kcat exited non-zero or timed out."""

    def __init__(self, message: str, *, returncode: int | None, stdout: str, stderr: str):
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def kcat_available(timeout: float = 300) -> str | None:
    """None when kcat is on PATH (installing it with setup_kcat.sh first if needed), else the reason to skip."""
    global _setup_result, _setup_tried
    if shutil.which("kcat"):
        return None
    with _lock:
        if shutil.which("kcat"):
            return None
        if not _setup_tried:
            _setup_tried = True
            try:
                proc = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True,
                                      timeout=timeout, stdin=subprocess.DEVNULL)
                output = (proc.stdout + proc.stderr).strip()
                ok = proc.returncode == 0 and shutil.which("kcat")
                _setup_result = None if ok else f"kcat not available: {SETUP_SCRIPT.name} said: {output[-1500:]}"
            except subprocess.TimeoutExpired:
                _setup_result = f"kcat not available: {SETUP_SCRIPT.name} did not finish within {timeout} s"
        return _setup_result


def kcat_version() -> str:
    """kcat's version line, e.g. 'Version 1.7.1 (JSON, ..., librdkafka 2.0.2 builtin.features=...)'."""
    out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10)
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("Version"):
            return line.strip()
    return (out.stdout + out.stderr).strip()


def run_kcat(args: list[str], input: str | bytes | None = None, timeout: float = 30) -> str:
    """Run ``kcat args...`` (feeding ``input`` on stdin) and return its stdout as text.

    Raises KcatError (with stderr) when kcat exits non-zero or runs past ``timeout`` seconds; kcat exits 1
    when it cannot reach the broker or deliver/fetch (its "% ERROR" lines are in ``KcatError.stderr``).
    Add ``-m <seconds>`` to bound kcat's own metadata wait below ``timeout``.
    """
    reason = kcat_available()
    if reason:
        raise RuntimeError(reason)
    if isinstance(input, str):
        input = input.encode()
    cmd = ["kcat", *map(str, args)]
    try:
        proc = subprocess.run(cmd, input=input if input is not None else b"", capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode(errors="replace")
        raise KcatError(f"{' '.join(cmd)} did not finish within {timeout} s\nstderr:\n{err[-4000:]}",
                        returncode=None, stdout=(e.stdout or b"").decode(errors="replace"), stderr=err) from None
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise KcatError(f"{' '.join(cmd)} failed (exit {proc.returncode})\nstderr:\n{stderr[-4000:]}",
                        returncode=proc.returncode, stdout=stdout, stderr=stderr)
    return stdout
