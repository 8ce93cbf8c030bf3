"""Request handlers: one module per API family, each registering what it serves in `registry`."""

from . import admin, api_versions, consumer_groups, fetch, groups, init_producer_id, leader_epochs, list_offsets, metadata, offsets, produce, quotas, replicas, topics, transactions  # noqa: F401
from .registry import HANDLERS, Handler, RequestContext

__all__ = ["HANDLERS", "Handler", "RequestContext"]
