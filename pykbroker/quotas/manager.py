"""Byte-rate enforcement for one quota key (producer_byte_rate or consumer_byte_rate), as Kafka's
ClientQuotaManager with its default callback.

A request's (user, client-id) finds its quota by Kafka's precedence:
    /config/users/<user>/clients/<client-id>   /config/users/<user>/clients/<default>
    /config/users/<user>                       /config/users/<default>/clients/<client-id>
    /config/users/<default>/clients/<default>  /config/users/<default>
    /config/clients/<client-id>                /config/clients/<default>
Clients that resolve to the same quota level share one rate sensor (e.g. every client-id of a user
with a user quota), keyed by Kafka's metric tags (user tag, client-id tag). Without authentication
the user is Kafka's anonymous principal, "ANONYMOUS".

Recording returns the throttle time; the caller reports it in throttle_time_ms and the server mutes
the connection for that long (KIP-219). Nothing here knows about requests or sockets.
"""

from __future__ import annotations

import time
from typing import Callable

from .entities import CLIENT_ID, USER, QuotaEntity
from .rate import WindowedRate, throttle_time_ms

ANONYMOUS_USER = "ANONYMOUS"
#: Kafka purges a client's sensors after an hour without traffic.
INACTIVE_SENSOR_EXPIRATION_MS = 3_600_000

Tags = tuple[str, str]  # (user tag, client-id tag); "" where the level does not use it


def _user_client(user: str | None, client: str | None) -> QuotaEntity:
    """The entity for a level: user and/or client-id, None meaning <default>, absent when not given."""
    pairs = []
    if user is not _ABSENT:
        pairs.append((USER, user))
    if client is not _ABSENT:
        pairs.append((CLIENT_ID, client))
    return tuple(sorted(pairs))


_ABSENT = "\0absent"  # a sentinel no entity name can be (Kafka refuses empty names; NUL is not sent)


def _now_ms() -> int:
    """Rates are measured on the monotonic clock: a wall-clock step must not free or lock out clients."""
    return int(time.monotonic() * 1000)


class ClientQuotaManager:
    def __init__(self, key: str, samples: int, window_s: int, quotas: Callable[[], dict[QuotaEntity, float]]) -> None:
        """`quotas()` gives the configured entities for `key` (read on every request, so an
        AlterClientQuotas takes effect at once)."""
        self.key = key
        self.samples = samples
        self.window_ms = window_s * 1000
        self._quotas = quotas
        self._sensors: dict[Tags, WindowedRate] = {}
        self._next_purge_ms = 0

    @property
    def enabled(self) -> bool:
        return bool(self._quotas())

    def tags(self, user: str, client_id: str) -> Tags:
        """Kafka's DefaultQuotaCallback.quotaMetricTags: which level's sensor the client shares."""
        q = self._quotas()
        for level_user, level_client, tags in (
            (user, client_id, (user, client_id)), (user, None, (user, client_id)),
            (user, _ABSENT, (user, "")), (None, client_id, (user, client_id)),
            (None, None, (user, client_id)), (None, _ABSENT, (user, "")),
        ):
            if _user_client(level_user, level_client) in q:
                return tags
        return ("", client_id)

    def limit(self, tags: Tags) -> float | None:
        """Kafka's DefaultQuotaCallback.quotaLimit for the tags; None: no quota applies."""
        user, client_id = tags
        q = self._quotas()
        if user and client_id:
            levels = ((user, client_id), (user, None), (None, client_id), (None, None))
        elif user:
            levels = ((user, _ABSENT), (None, _ABSENT))
        elif client_id:
            levels = ((_ABSENT, client_id), (_ABSENT, None))
        else:
            return None
        for level_user, level_client in levels:
            value = q.get(_user_client(level_user, level_client))
            if value is not None:
                return value
        return None

    def record(self, user: str, client_id: str | None, value: float, now_ms: int | None = None) -> int:
        """Record `value` bytes for the client; the throttle time in ms (0: within its quota)."""
        if not self.enabled:
            return 0
        now_ms = _now_ms() if now_ms is None else now_ms
        tags = self.tags(user, client_id or "")
        rate = self._sensor(tags, now_ms)
        rate.record(value, now_ms)
        bound = self.limit(tags)
        if bound is None:
            return 0
        measured = rate.measure(now_ms)
        if measured <= bound:
            return 0
        return throttle_time_ms(measured, bound, rate.window_size_ms(now_ms))

    def unrecord(self, user: str, client_id: str | None, value: float, now_ms: int | None = None) -> None:
        """Take back a recorded value (a throttled fetch whose data is not sent, as Kafka does)."""
        if self.enabled:
            now_ms = _now_ms() if now_ms is None else now_ms
            self._sensor(self.tags(user, client_id or ""), now_ms).record(-value, now_ms)

    def max_value_in_window(self, user: str, client_id: str | None) -> float:
        """The most the client can take in one quota window without being throttled (Kafka caps a
        consumer's fetch max bytes with it); infinite without a quota."""
        bound = self.limit(self.tags(user, client_id or "")) if self.enabled else None
        if bound is None:
            return float("inf")
        return bound * (self.samples - 1) * self.window_ms / 1000

    def _sensor(self, tags: Tags, now_ms: int) -> WindowedRate:
        if now_ms >= self._next_purge_ms:
            self._next_purge_ms = now_ms + 60_000
            for stale in [t for t, r in self._sensors.items()
                          if now_ms - r.last_record_ms > INACTIVE_SENSOR_EXPIRATION_MS]:
                del self._sensors[stale]
        rate = self._sensors.get(tags)
        if rate is None:
            rate = self._sensors[tags] = WindowedRate(self.samples, self.window_ms)
        return rate
