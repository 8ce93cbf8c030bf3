"""KIP-848 consumer groups: assignors and the heartbeat-driven reconciliation, without sockets."""

from __future__ import annotations

import uuid
from typing import Any

import trio

from pykbroker.coordinator.assignors import range_assign, uniform_assign
from pykbroker.coordinator.consumer_group import (
    ConsumerGroupCoordinator, ConsumerGroupLimits, ConsumerHeartbeat, ConsumerHeartbeatResult,
)
from pykbroker.protocol.errors import ErrorCode

TOPIC_ID = uuid.uuid4()


def test_range_assignor() -> None:
    out = range_assign({"a": {"t"}, "b": {"t"}}, {"t": 5})
    assert out == {"a": {"t": {0, 1, 2}}, "b": {"t": {3, 4}}}


def test_uniform_assignor_is_balanced_and_sticky() -> None:
    first = uniform_assign({"a": {"t"}}, {"t": 5})
    assert first == {"a": {"t": {0, 1, 2, 3, 4}}}
    second = uniform_assign({"a": {"t"}, "b": {"t"}, "c": {"t"}, "d": {"t"}}, {"t": 5}, first)
    sizes = sorted(len(x.get("t", ())) for x in second.values())
    assert sizes == [1, 1, 1, 2]
    assert second["a"]["t"] <= first["a"]["t"]  # a keeps what it can
    assert set().union(*(x.get("t", set()) for x in second.values())) == {0, 1, 2, 3, 4}


def heartbeat(coord: ConsumerGroupCoordinator, member_id: str, epoch: int, owned: list[int] | None = None,
              topics: list[str] | None = None) -> ConsumerHeartbeatResult:
    req = ConsumerHeartbeat("g", member_id, epoch, rebalance_timeout_ms=30000, subscribed_topic_names=topics,
                            owned=None if owned is None else {TOPIC_ID: owned})
    return coord.heartbeat(req, "client", "/127.0.0.1")


def parts(response: ConsumerHeartbeatResult) -> set[int] | None:
    a = response.assignment
    return None if a is None else {p for ps in a.values() for p in ps}


def test_second_member_gets_partitions_only_after_the_first_revokes_them() -> None:
    async def scenario() -> None:
        coord = ConsumerGroupCoordinator(lambda name: (TOPIC_ID, 4) if name == "t" else None,
                                         ConsumerGroupLimits(heartbeat_interval_ms=1000, min_heartbeat_interval_ms=1000))
        a = heartbeat(coord, "", 0, topics=["t"])
        assert a.error == 0 and parts(a) == {0, 1, 2, 3}
        a_id, a_epoch = a.member_id, a.member_epoch
        b = heartbeat(coord, "", 0, topics=["t"])
        b_id = b.member_id
        assert parts(b) == set()  # target has two partitions for b, but a still owns them
        a2 = heartbeat(coord, a_id, a_epoch, owned=[0, 1, 2, 3])
        kept = parts(a2)
        assert kept is not None and len(kept) == 2 and a2.member_epoch == a_epoch  # revoke first
        a3 = heartbeat(coord, a_id, a_epoch, owned=sorted(kept))  # a reports the others gone
        assert a3.member_epoch > a_epoch
        b2 = heartbeat(coord, b_id, b.member_epoch, owned=[])
        assert parts(b2) == {0, 1, 2, 3} - kept
        described = coord.describe("g")
        assert described.state == "Stable" and len(described.members) == 2
        assert heartbeat(coord, b_id, 99).error == ErrorCode.FENCED_MEMBER_EPOCH
        assert heartbeat(coord, "nobody", 1).error == ErrorCode.UNKNOWN_MEMBER_ID
        left = heartbeat(coord, b_id, -1)
        assert left.member_epoch == -1 and len(coord.describe("g").members) == 1
        assert coord.commit_check("g", a_id, a3.member_epoch) == ErrorCode.NONE
        assert coord.commit_check("g", a_id, 0) == ErrorCode.STALE_MEMBER_EPOCH

    trio.run(scenario)
