"""Shared by the per-client check modules: the context a check runs in, registration, small helpers."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..features import FEATURES
from ..result import Fail, Skip

__all__ = ["Ctx", "CheckSet", "Fail", "Skip", "NotYet", "UNKNOWN_TOPIC_OR_PARTITION", "expect", "value_for", "wait_until", "digest", "T0_MS"]

UNKNOWN_TOPIC_OR_PARTITION = 3


class NotYet(RuntimeError):
    """Retryable: the broker does not know about it yet. Apache Kafka answers CreateTopics once the controller
    has committed the topic; the broker serving the next request may learn of it a moment later, so a describe
    right after a create can get UNKNOWN_TOPIC_OR_PARTITION. wait_until retries this, as Kafka's clients do."""


# Timestamps used by offsets-for-times checks: an hour ago, whole seconds (inside any retention).
T0_MS = (int(time.time()) - 3600) * 1000


@dataclass
class Ctx:
    """One check's world: the broker address, its deadline, and the names it created (for cleanup)."""

    bootstrap: str
    client: str
    feature: str
    deadline: float                      # time.monotonic() by which the check body should be done
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _name(self, kind: str) -> str:
        return f"compat-{self.client}-{self.feature}-{kind}-{uuid.uuid4().hex[:8]}"

    def topic(self) -> str:
        """A fresh, unique topic name; it is deleted after the check (best effort)."""
        name = self._name("t")
        self.topics.append(name)
        return name

    def group(self) -> str:
        name = self._name("g")
        self.groups.append(name)
        return name

    def transactional_id(self) -> str:
        return self._name("txn")

    def remaining(self, cap: float | None = None) -> float:
        left = max(0.1, self.deadline - time.monotonic())
        return min(left, cap) if cap is not None else left

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def note(self, text: str) -> None:
        self.notes.append(text)


CheckFn = Callable[[Ctx], None]


class CheckSet:
    """The features one client implements, and the reasons it does not implement the others."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.checks: dict[str, CheckFn] = {}
        self.unsupported: dict[str, str] = {}

    def feature(self, *names: str) -> Callable[[CheckFn], CheckFn]:
        def register(fn: CheckFn) -> CheckFn:
            for name in names:
                if name not in FEATURES:
                    raise KeyError(f"unknown feature {name!r}")
                self.checks[name] = fn
            return fn
        return register

    def not_supported(self, reason: str, *names: str) -> None:
        for name in names:
            if name not in FEATURES:
                raise KeyError(f"unknown feature {name!r}")
            self.unsupported[name] = reason


def expect(condition: object, message: str) -> None:
    if not condition:
        raise Fail(message)


def value_for(i: int, size: int = 40) -> bytes:
    """Record i's value: a recognisable prefix, padded with compressible text to `size` bytes."""
    prefix = b"v%06d:" % i
    if size <= len(prefix):
        return prefix
    pad = (b"the quick brown fox jumps over the lazy dog %d " % (i % 7)) * (size // 40 + 1)
    return prefix + pad[: size - len(prefix)]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def wait_until(ctx: Ctx, predicate: Callable[[], object], what: str, interval: float = 0.2,
               cap: float | None = None) -> object:
    """Polls `predicate` until truthy; Fail naming `what` when the check's time runs out first."""
    end = time.monotonic() + ctx.remaining(cap)
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (Fail, KeyError, TypeError, AttributeError, NameError):
            raise  # a verdict, or a bug in the check: retrying will not help
        except Exception as e:  # the client may raise while the broker catches up
            last_error = e
        if time.monotonic() >= end:
            suffix = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise Fail(f"timed out waiting for {what}{suffix}")
        time.sleep(interval)


def first_mismatch(got: Iterable[object], want: Iterable[object]) -> str:
    """'item 12: got X, want Y' for the first difference of two sequences, or a length difference."""
    got, want = list(got), list(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"item {i}: got {_short(g)}, want {_short(w)}"
    if len(got) != len(want):
        return f"got {len(got)} items, want {len(want)}"
    return ""


def _short(x: object, limit: int = 80) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + "..."
