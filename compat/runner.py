"""Plans the checks, runs each in its own subprocess (python -m compat.worker) with a hard timeout."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .checks import load
from .features import CLIENTS, FEATURES
from .result import FAIL, SKIP, Result
from .worker import MARKER

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 12


def _patterns(specs: Iterable[str] | None) -> list[str]:
    return [p.strip() for spec in specs or () for p in spec.split(",") if p.strip()]


def matches(pattern: str, client: str, feature: str) -> bool:
    """`client/feature` globs ("aiokafka/*", "*/group-*"); without a slash, a client or a feature glob."""
    if "/" in pattern:
        return fnmatch.fnmatchcase(f"{client}/{feature}", pattern)
    return fnmatch.fnmatchcase(client, pattern) or fnmatch.fnmatchcase(feature, pattern)


def select(only: Sequence[str] | None = None, exclude: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(client, feature) pairs in matrix order, after --only / --exclude."""
    only_p, exclude_p = _patterns(only), _patterns(exclude)
    picked = []
    for client in CLIENTS:
        for feature in FEATURES:
            if only_p and not any(matches(p, client, feature) for p in only_p):
                continue
            if any(matches(p, client, feature) for p in exclude_p):
                continue
            picked.append((client, feature))
    return picked


def client_versions(clients: Iterable[str]) -> dict[str, str]:
    out = {}
    for client in clients:
        try:
            module = load(client)
            out[client] = module.version() if module.available() is None else ""
        except Exception:
            out[client] = ""
    return out


def _client_skip_reasons(clients: Iterable[str]) -> dict[str, str | None]:
    reasons: dict[str, str | None] = {}
    for client in clients:
        try:
            module = load(client)
        except Exception as e:  # a broken client module: report, do not crash the suite
            reasons[client] = f"cannot load the {client} checks: {type(e).__name__}: {e}"
            continue
        prepare = getattr(module, "prepare", None)
        problem = prepare() if prepare is not None else None
        reasons[client] = problem or module.available()
    return reasons


def run_one(client: str, feature: str, bootstrap: str, timeout_s: float) -> Result:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "compat.worker", client, feature, bootstrap, str(timeout_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True)  # own group: kill its java/kcat children too
    try:
        out, err = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        timed_out = True
    elapsed = time.monotonic() - started
    stderr_text = err.decode(errors="replace")
    tail = "\n".join(stderr_text.strip().splitlines()[-LOG_TAIL_LINES:])[-2000:]
    result = None
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith(MARKER):
            result = Result(**json.loads(line[len(MARKER):]))
            break
    if result is None:
        why = (f"killed at the hard timeout ({timeout_s:g} s)" if timed_out
               else f"the check process exited {proc.returncode} without a result")
        result = Result(client, feature, FAIL, why)
    result.duration_s = elapsed
    if result.status == FAIL:
        result.log_tail = tail
    return result


def run(bootstrap: str, checks: Sequence[tuple[str, str]], *, timeout_s: float = 60, jobs: int = 2,
        progress: Callable[[int, int, Result], None] | None = None) -> list[Result]:
    """Runs `checks` (client, feature) against `bootstrap`; results in the order of `checks`."""
    reasons = _client_skip_reasons(sorted({c for c, _ in checks}, key=CLIENTS.index))
    results: list[Result | None] = [None] * len(checks)
    to_run: list[int] = []
    for i, (client, feature) in enumerate(checks):
        if reasons[client]:
            results[i] = Result(client, feature, SKIP, reasons[client])
            continue
        unsupported = load(client).checks.unsupported.get(feature)
        if unsupported or feature not in load(client).checks.checks:
            results[i] = Result(client, feature, SKIP, unsupported or f"no {client} check for {feature}")
            continue
        to_run.append(i)
    done = 0
    total = len(checks)
    for i, r in enumerate(results):
        if r is not None and progress:
            done += 1
            progress(done, total, r)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_one, *checks[i], bootstrap, timeout_s): i for i in to_run}
        for future in as_completed(futures):
            result = results[futures[future]] = future.result()
            done += 1
            if progress:
                progress(done, total, result)
    return [r for r in results if r is not None]
