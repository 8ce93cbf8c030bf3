"""What one check ends with: PASS, FAIL(reason), SKIP(reason); XFAIL is a FAIL the allowlist expected."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
XFAIL = "XFAIL"
STATUSES = (PASS, FAIL, SKIP, XFAIL)


class Skip(Exception):
    """Raised by a check that cannot run here (client lacks the feature, library missing...)."""


class Fail(Exception):
    """Raised by a check whose feature does not work against the broker (AssertionError works too)."""


@dataclass
class Result:
    client: str
    feature: str
    status: str
    reason: str = ""
    duration_s: float = 0.0
    note: str = ""          # extra detail on a PASS (e.g. "offsets 0..4999")
    log_tail: str = ""      # last lines the check wrote on stderr, kept for FAIL

    @property
    def check_id(self) -> str:
        return f"{self.client}/{self.feature}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration_s"] = round(self.duration_s, 2)
        return d
