"""`python -m compat HOST:PORT [--json] [--only PATTERN] [--exclude PATTERN] [--timeout S] [--allow FILE]`."""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
import time
from typing import Sequence

from . import allowlist, report, runner
from .features import CLIENTS, FEATURES
from .result import FAIL, Result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m compat",
        description="Run real Kafka clients against any Kafka-compatible broker and print a "
                    "PASS/FAIL/SKIP matrix (rows: features, columns: clients).",
        epilog="Patterns are globs on CLIENT/FEATURE (e.g. 'aiokafka/*', '*/group-*'), or on a client or a "
               "feature name alone; comma-separated or repeated. Exit status: 0 when nothing FAILed, 1 otherwise, "
               "2 on usage errors or an unreachable broker.")
    p.add_argument("bootstrap", nargs="?", metavar="HOST:PORT", help="the broker to test")
    p.add_argument("--json", action="store_true", help="print machine-readable results instead of the matrix")
    p.add_argument("--only", action="append", metavar="PATTERN", help="run only the matching checks")
    p.add_argument("--exclude", action="append", metavar="PATTERN", help="leave out the matching checks")
    p.add_argument("--timeout", type=float, default=60, metavar="S", help="hard limit per check (default 60 s)")
    p.add_argument("--jobs", type=int, default=3, metavar="N", help="checks run at once (default 3)")
    p.add_argument("--allow", metavar="FILE", help="expected failures, lines 'CLIENT FEATURE  # reason': "
                                                   "reported as XFAIL, not counted as failed")
    p.add_argument("--list", action="store_true", help="list the selected checks and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="show the client log tail of each failure")
    return p


def _reachable(bootstrap: str, timeout_s: float = 5) -> str | None:
    host, sep, port = bootstrap.rpartition(":")
    if not sep or not port.isdigit():
        return f"expected HOST:PORT, got {bootstrap!r}"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        return f"cannot connect to {bootstrap}: {e}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    checks = runner.select(args.only, args.exclude)
    if args.list:
        for client, feature in checks:
            print(f"{client}/{feature}  {FEATURES[feature]}")
        return 0
    if not args.bootstrap:
        parser.error("HOST:PORT is required")
    if not checks:
        parser.error(f"no check matches --only/--exclude (clients: {', '.join(CLIENTS)}; "
                     f"features: {', '.join(FEATURES)})")
    entries: list[allowlist.Entry] = []
    if args.allow:
        try:
            entries = allowlist.load(args.allow)
        except allowlist.AllowlistError as e:
            print(f"compat: {e}", file=sys.stderr)
            return 2
    problem = _reachable(args.bootstrap)
    if problem:
        print(f"compat: {problem}", file=sys.stderr)
        return 2

    def progress(done: int, total: int, r: Result) -> None:
        if not args.quiet:
            why = f": {r.reason[:100]}" if r.reason else ""
            print(f"[{done:>3}/{total}] {r.status:5} {r.check_id} ({r.duration_s:.1f} s){why}",
                  file=sys.stderr, flush=True)

    started = time.monotonic()
    date = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    results = runner.run(args.bootstrap, checks, timeout_s=args.timeout, jobs=args.jobs, progress=progress)
    allowlist.apply(results, entries)
    meta = {"bootstrap": args.bootstrap, "date": date, "duration_s": round(time.monotonic() - started, 1),
            "timeout_s": args.timeout, "clients": runner.client_versions(sorted({r.client for r in results},
                                                                                  key=CLIENTS.index))}
    print(report.as_json(results, meta) if args.json else report.text(results, meta, args.verbose), flush=True)
    return 1 if any(r.status == FAIL for r in results) else 0
