"""Client quotas (KIP-546 entities, Kafka's ClientQuotaManager enforcement).

    entities.py  entity types, quota keys, validation, DescribeClientQuotas filters
    store.py     the configured quotas and their file form (pure)
    rate.py      the windowed rate Kafka's quota sensors measure
    manager.py   per-key enforcement: precedence, shared sensors, throttle time

`ClientQuotas` ties them together for the broker: the store (swapped whole on each alteration,
after the file is written) and one manager per enforced byte rate.
"""

from __future__ import annotations

from .manager import ANONYMOUS_USER, ClientQuotaManager
from .store import QuotaStore

__all__ = ["ANONYMOUS_USER", "ClientQuotaManager", "ClientQuotas", "QuotaStore"]


class ClientQuotas:
    def __init__(self, store: QuotaStore, samples: int, window_s: int) -> None:
        self.store = store
        self.produce = ClientQuotaManager("producer_byte_rate", samples, window_s,
                                          lambda: self._by_key["producer_byte_rate"])
        self.fetch = ClientQuotaManager("consumer_byte_rate", samples, window_s,
                                        lambda: self._by_key["consumer_byte_rate"])
        self._by_key: dict[str, dict] = {}
        self.install(store)

    def install(self, store: QuotaStore) -> None:
        self.store = store
        self._by_key = {key: store.entities_with(key) for key in ("producer_byte_rate", "consumer_byte_rate")}
