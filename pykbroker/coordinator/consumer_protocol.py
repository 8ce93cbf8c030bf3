"""The consumer protocol's member metadata (ConsumerProtocolSubscription): which topics a member wants."""

from __future__ import annotations

import struct

from ..protocol.messages import codec
from ..protocol.primitives import DecodeError

_VERSION = struct.Struct(">h")


def subscription_topics(metadata: bytes) -> set[str]:
    """Topics in a consumer's subscription; an unreadable one subscribes to nothing."""
    if len(metadata) < 2:
        return set()
    version = min(_VERSION.unpack_from(metadata)[0], 3)  # newer versions only append fields
    try:
        sub, _ = codec("consumer_protocol_subscription", max(version, 0)).decode(metadata, 2)
    except DecodeError:
        return set()
    return set(sub.topics)
