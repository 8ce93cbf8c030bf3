"""Runs ONE check in this process and prints its result as the last stdout line (`COMPAT-RESULT {json}`).

    python -m compat.worker CLIENT FEATURE HOST:PORT TIMEOUT_S

The runner starts one of these per check and kills it at the hard timeout; the check body gets about
85 % of that, the rest is for best-effort cleanup of the topics it created.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

from .checks import load
from .checks.common import Ctx
from .result import FAIL, PASS, SKIP, Fail, Result, Skip

MARKER = "COMPAT-RESULT "


def run_check(client: str, feature: str, bootstrap: str, timeout_s: float) -> Result:
    started = time.monotonic()
    body_s = max(1.0, timeout_s * 0.85 - 1.0)
    ctx = Ctx(bootstrap=bootstrap, client=client, feature=feature, deadline=started + body_s)
    module = load(client)
    fn = module.checks.checks.get(feature)
    if fn is None:
        reason = module.checks.unsupported.get(feature, f"{client} has no check for {feature}")
        return Result(client, feature, SKIP, reason)
    try:
        fn(ctx)
        result = Result(client, feature, PASS, note="; ".join(ctx.notes))
    except Skip as e:
        result = Result(client, feature, SKIP, str(e))
    except (Fail, AssertionError) as e:
        result = Result(client, feature, FAIL, str(e) or type(e).__name__)
    except Exception as e:
        ours = [f for f in traceback.extract_tb(e.__traceback__) if f"{os.sep}compat{os.sep}" in f.filename]
        where = f" (at {os.path.basename(ours[-1].filename)}:{ours[-1].lineno})" if ours else ""
        result = Result(client, feature, FAIL, f"{type(e).__name__}: {e}{where}")
    _cleanup(module, ctx, started + timeout_s - 0.5)
    result.duration_s = time.monotonic() - started
    return result


def _cleanup(module, ctx: Ctx, hard_deadline: float) -> None:
    """Deletes what the check created, in a daemon thread so a stuck client cannot hold the result."""
    if not ctx.topics:
        return
    ctx.deadline = max(ctx.deadline, time.monotonic()) + 5
    ctx.deadline = min(ctx.deadline, hard_deadline)

    def work() -> None:
        try:
            module.cleanup(ctx)
        except Exception as e:  # best effort: the broker may not support deletion
            print(f"compat: cleanup of {ctx.topics} failed: {type(e).__name__}: {e}", file=sys.stderr)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(max(0.1, hard_deadline - time.monotonic()))


def main(argv: list[str]) -> int:
    client, feature, bootstrap, timeout_s = argv[0], argv[1], argv[2], float(argv[3])
    result = run_check(client, feature, bootstrap, timeout_s)
    sys.stderr.flush()
    print(MARKER + json.dumps(result.to_dict()), flush=True)
    # Client libraries may leave non-daemon threads behind: the answer is out, leave now.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
