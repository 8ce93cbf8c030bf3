"""The classic group coordinator's state machine, without sockets: time is trio's MockClock."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest
import trio
import trio.testing

from pykbroker.coordinator.consumer_group import ConsumerGroupCoordinator, ConsumerGroupLimits, ConsumerHeartbeat
from pykbroker.coordinator.group import GroupState
from pykbroker.coordinator.group_coordinator import GroupCoordinator
from pykbroker.coordinator.offset_coordinator import GroupLimits
from pykbroker.coordinator.offsets_schema import CommittedOffset
from pykbroker.coordinator.results import JoinResult, SyncResult
from pykbroker.log.errors import KafkaStorageError, UnknownTopicOrPartitionError
from pykbroker.protocol.errors import ErrorCode

PROTOCOLS = [("range", b"sub")]
OFFSET = CommittedOffset(5, -1, "", 1000)


class Log:
    """The append callback: records every batch per partition; `fail` makes the next appends raise."""

    def __init__(self) -> None:
        self.batches: dict[int, list[bytes]] = {}
        self.fail: BaseException | None = None

    def __call__(self, partition: int, batch: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.batches.setdefault(partition, []).append(batch)


def coordinator(log: Log | None = None, partitions: int = 1, limits: GroupLimits = GroupLimits(),
                delay_ms: int = 100) -> GroupCoordinator:
    """Members joining within group.initial.rebalance.delay.ms (100 ms here) share the first generation."""
    coord = GroupCoordinator(log or Log(), partitions, delay_ms, 7 * 24 * 3600 * 1000, limits)
    for p in range(partitions):
        coord.load(p, [])
    return coord


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


async def ticking(coord: GroupCoordinator, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The broker's housekeeping: the coordinator's timers every 100 ms."""
    task_status.started()
    while True:
        await trio.sleep(0.1)
        coord.tick()


async def join(coord: GroupCoordinator, member_id: str = "", session_ms: int = 10000, rebalance_ms: int = 5000,
               group: str = "g", instance_id: str | None = None) -> JoinResult:
    return await coord.join(group, member_id, instance_id, "consumer", PROTOCOLS, session_ms, rebalance_ms,
                            "client", "/127.0.0.1", require_known_member_id=False)


async def join_all(coord: GroupCoordinator, *member_ids: str, **kw: Any) -> list[JoinResult]:
    """Concurrent JoinGroups, with the coordinator's timers running until all are answered."""
    results: list[JoinResult | None] = [None] * len(member_ids)

    async def one(i: int, mid: str) -> None:
        results[i] = await join(coord, mid, **kw)
    async with trio.open_nursery() as n:
        async with trio.open_nursery() as joins:
            n.start_soon(ticking, coord)  # the initial delay ends on a tick
            for i, mid in enumerate(member_ids):
                joins.start_soon(one, i, mid)
                await trio.sleep(0)
        n.cancel_scope.cancel()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


async def stable_group(coord: GroupCoordinator, size: int) -> list[JoinResult]:
    """`size` members joined and synced at one generation; the leader assigned b"a-<member>"."""
    joined = await join_all(coord, *[""] * size)
    assert all(r.error == ErrorCode.NONE for r in joined)
    gen = joined[0].generation
    assert {r.generation for r in joined} == {gen}
    leader = next(r for r in joined if r.member_id == r.leader)
    synced: dict[str, SyncResult] = {}

    async def sync(r: JoinResult) -> None:
        assignments = {m.member_id: b"a-" + m.member_id.encode() for m in r.members}
        synced[r.member_id] = await coord.sync("g", r.member_id, None, gen, "consumer", "range", assignments)
    async with trio.open_nursery() as n:
        for r in joined:
            if r is not leader:
                n.start_soon(sync, r)
        await trio.sleep(0.01)
        n.start_soon(sync, leader)
    assert all(s.error == ErrorCode.NONE and s.assignment == b"a-" + mid.encode() for mid, s in synced.items())
    return joined


# ---------------------------------------------------------------------- typed results, limits


def test_two_members_join_and_sync_with_typed_results() -> None:
    async def scenario() -> None:
        coord = coordinator()
        joined = await stable_group(coord, 2)
        leader = next(r for r in joined if r.member_id == r.leader)
        assert {m.member_id for m in leader.members} == {r.member_id for r in joined}
        assert all(r.protocol_name == "range" and r.protocol_type == "consumer" for r in joined)
        assert coord.groups["g"].state == GroupState.STABLE
        follower = next(r for r in joined if r is not leader)
        assert follower.members == ()
    run(scenario)


def test_session_timeout_outside_the_limits_is_rejected() -> None:
    async def scenario() -> None:
        coord = coordinator(limits=GroupLimits(min_session_timeout_ms=1000, max_session_timeout_ms=20000))
        assert (await join(coord, session_ms=999)).error == ErrorCode.INVALID_SESSION_TIMEOUT
        assert (await join(coord, session_ms=20001)).error == ErrorCode.INVALID_SESSION_TIMEOUT
        assert "g" not in coord.groups
        assert (await join_all(coord, "", session_ms=1000))[0].error == ErrorCode.NONE
        assert (await join(coordinator(), session_ms=5999)).error == ErrorCode.INVALID_SESSION_TIMEOUT  # Kafka's 6000
    run(scenario)


def test_a_full_group_refuses_new_members() -> None:
    async def scenario() -> None:
        coord = coordinator(limits=GroupLimits(max_size=1))
        (first,) = await join_all(coord, "")
        assert first.error == ErrorCode.NONE
        second = await join(coord)
        assert second.error == ErrorCode.GROUP_MAX_SIZE_REACHED and second.member_id == ""
        assert list(coord.groups["g"].members) == [first.member_id]
        assert (await join(coord, first.member_id)).error == ErrorCode.NONE  # a member may rejoin
    run(scenario)


def test_consumer_protocol_limits() -> None:
    with pytest.raises(ValueError, match="group.consumer.session.timeout.ms"):
        ConsumerGroupLimits(session_timeout_ms=10000)  # below group.consumer.min.session.timeout.ms
    with pytest.raises(ValueError, match="heartbeat.interval"):
        ConsumerGroupLimits(heartbeat_interval_ms=500)

    async def scenario() -> None:
        coord = ConsumerGroupCoordinator(lambda t: None, ConsumerGroupLimits(max_size=1))
        assert coord.heartbeat(ConsumerHeartbeat("g", "", 0, subscribed_topic_names=["t"]), "c", "h").error == 0
        full = coord.heartbeat(ConsumerHeartbeat("g", "", 0, subscribed_topic_names=["t"]), "c", "h")
        assert full.error == ErrorCode.GROUP_MAX_SIZE_REACHED and len(coord.groups["g"].members) == 1
    run(scenario)


# ---------------------------------------------------------------------- parked calls, timeouts


def test_a_repeated_join_while_parked_is_answered_too() -> None:
    async def scenario() -> None:
        coord = coordinator()
        async with trio.open_nursery() as n:
            await n.start(ticking, coord)
            joined = await stable_group(coord, 2)
            a = next(r for r in joined if r.member_id == r.leader)
            b = next(r for r in joined if r is not a)
            results: list[JoinResult] = []

            async def rejoin(mid: str) -> None:
                results.append(await join(coord, mid))
            # the leader rejoins (a rebalance) twice: a retry after a client-side timeout
            n.start_soon(rejoin, a.member_id)
            await trio.sleep(0.01)
            n.start_soon(rejoin, a.member_id)
            await trio.sleep(0.01)
            n.start_soon(rejoin, b.member_id)
            with trio.fail_after(10):
                while len(results) < 3:
                    await trio.sleep(0.05)
            assert all(r.error == ErrorCode.NONE for r in results)
            assert {r.generation for r in results} == {a.generation + 1}
            n.cancel_scope.cancel()
    run(scenario)


def test_a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout() -> None:
    async def scenario() -> None:
        coord = coordinator()
        async with trio.open_nursery() as n:
            await n.start(ticking, coord)
            a, b = await stable_group(coord, 2)
            started = trio.current_time()
            again = await join(coord, a.member_id, rebalance_ms=5000)  # b never rejoins (still heartbeats)
            assert again.error == ErrorCode.NONE and again.leader == a.member_id
            assert 4.9 <= trio.current_time() - started <= 5.5
            assert list(coord.groups["g"].members) == [a.member_id]
            assert coord.heartbeat("g", b.member_id, None, b.generation) == ErrorCode.UNKNOWN_MEMBER_ID
            n.cancel_scope.cancel()
    run(scenario)


def test_heartbeat_answers_rebalance_in_progress_while_preparing_and_none_while_completing() -> None:
    async def scenario() -> None:
        coord = coordinator()
        async with trio.open_nursery() as n:
            await n.start(ticking, coord)
            a, b = await stable_group(coord, 2)
            n.start_soon(join, coord, a.member_id)
            await trio.sleep(0.01)
            assert coord.groups["g"].state == GroupState.PREPARING_REBALANCE
            assert coord.heartbeat("g", b.member_id, None, b.generation) == ErrorCode.REBALANCE_IN_PROGRESS
            await join(coord, b.member_id)
            assert coord.groups["g"].state == GroupState.COMPLETING_REBALANCE
            assert coord.heartbeat("g", b.member_id, None, b.generation + 1) == ErrorCode.NONE  # as Kafka
            assert coord.heartbeat("g", b.member_id, None, b.generation) == ErrorCode.ILLEGAL_GENERATION
            n.cancel_scope.cancel()
    run(scenario)


def test_a_leader_that_never_syncs_is_removed_and_the_follower_takes_over() -> None:
    async def scenario() -> None:
        coord = coordinator()
        async with trio.open_nursery() as n:
            await n.start(ticking, coord)
            first = await join_all(coord, "", "")
            leader = next(r for r in first if r.member_id == r.leader)
            follower = next(r for r in first if r is not leader)
            started = trio.current_time()
            # The follower keeps heartbeating (OK in CompletingRebalance) and waits for its assignment.
            synced = await coord.sync("g", follower.member_id, None, follower.generation, None, None, {})
            assert synced.error == ErrorCode.REBALANCE_IN_PROGRESS  # answered at the rebalance timeout
            assert 4.9 <= trio.current_time() - started <= 5.5
            assert list(coord.groups["g"].members) == [follower.member_id]
            again = await join(coord, follower.member_id)
            assert again.error == ErrorCode.NONE and again.leader == follower.member_id
            assert again.generation == follower.generation + 1
            n.cancel_scope.cancel()
    run(scenario)


def test_a_follower_that_never_syncs_is_removed_after_the_leader_synced() -> None:
    async def scenario() -> None:
        coord = coordinator()
        async with trio.open_nursery() as n:
            await n.start(ticking, coord)
            first = await join_all(coord, "", "")
            leader = next(r for r in first if r.member_id == r.leader)
            follower = next(r for r in first if r is not leader)
            synced = await coord.sync("g", leader.member_id, None, leader.generation, None, None,
                                      {leader.member_id: b"x", follower.member_id: b"y"})
            assert synced.assignment == b"x"
            await trio.sleep(6)
            assert coord.groups["g"].state == GroupState.PREPARING_REBALANCE
            assert list(coord.groups["g"].members) == [leader.member_id]
            n.cancel_scope.cancel()
    run(scenario)


# ---------------------------------------------------------------------- offset commits


def test_offset_commit_rules_during_rebalances() -> None:
    async def scenario() -> None:
        coord = coordinator()
        async with trio.open_nursery() as n:
            await n.start(ticking, coord)
            a, b = await stable_group(coord, 2)
            gen = a.generation
            n.start_soon(join, coord, a.member_id)
            await trio.sleep(0.01)
            assert coord.groups["g"].state == GroupState.PREPARING_REBALANCE
            # cooperative consumers commit while the rebalance is pending: accepted (Kafka)
            assert coord.commit_check("g", b.member_id, None, gen) == ErrorCode.NONE
            assert coord.commit("g", {("t", 0): OFFSET}) == ErrorCode.NONE
            assert coord.commit_check("g", b.member_id, None, gen - 1) == ErrorCode.ILLEGAL_GENERATION
            assert coord.commit_check("g", "stranger", None, gen) == ErrorCode.UNKNOWN_MEMBER_ID
            assert coord.commit_check("g", "", None, -1) == ErrorCode.UNKNOWN_MEMBER_ID  # group has members
            await join(coord, b.member_id)
            assert coord.groups["g"].state == GroupState.COMPLETING_REBALANCE
            assert coord.commit_check("g", b.member_id, None, gen + 1) == ErrorCode.REBALANCE_IN_PROGRESS
            assert coord.commit_check("g", b.member_id, None, gen) == ErrorCode.ILLEGAL_GENERATION  # checked first
            n.cancel_scope.cancel()
        assert coord.commit_check("nogroup", "", None, -1) == ErrorCode.NONE
        assert coord.commit_check("nogroup", "m", None, 3) == ErrorCode.GROUP_ID_NOT_FOUND
        assert coord.commit_check("nogroup", "m", None, 3, api_version=8) == ErrorCode.ILLEGAL_GENERATION
    run(scenario)


# ---------------------------------------------------------------------- storage errors


@pytest.mark.parametrize("error, expected", [
    (KafkaStorageError("disk gone"), ErrorCode.NOT_COORDINATOR),
    (OSError(5, "I/O error"), ErrorCode.NOT_COORDINATOR),
    (UnknownTopicOrPartitionError("no such partition"), ErrorCode.COORDINATOR_NOT_AVAILABLE),
    (TimeoutError(), ErrorCode.COORDINATOR_NOT_AVAILABLE),
])
def test_a_failed_offset_write_is_answered_and_changes_nothing(error: BaseException, expected: ErrorCode) -> None:
    async def scenario() -> None:
        log = Log()
        coord = coordinator(log)
        assert coord.commit("g", {("t", 0): OFFSET}) == ErrorCode.NONE
        log.fail = error
        assert coord.commit("g", {("t", 0): OFFSET._replace(offset=9), ("t", 1): OFFSET}) == expected
        assert coord.offsets.get("g") == {("t", 0): OFFSET}
        assert coord.delete_offsets("g", [("t", 0)]) == expected
        assert coord.delete_group("g") == expected
        assert coord.offsets.get("g") == {("t", 0): OFFSET}
    run(scenario)


def test_a_failed_assignment_write_fails_the_sync_and_rebalances() -> None:
    async def scenario() -> None:
        log = Log()
        coord = coordinator(log)
        first = await join_all(coord, "", "")
        leader = next(r for r in first if r.member_id == r.leader)
        follower = next(r for r in first if r is not leader)
        results: dict[str, SyncResult] = {}

        async def sync(r: JoinResult, assignments: dict[str, bytes]) -> None:
            results[r.member_id] = await coord.sync("g", r.member_id, None, r.generation, None, None, assignments)
        async with trio.open_nursery() as n:
            n.start_soon(sync, follower, {})
            await trio.sleep(0.01)
            log.fail = KafkaStorageError("disk gone")
            n.start_soon(sync, leader, {leader.member_id: b"x", follower.member_id: b"y"})
        assert results[leader.member_id].error == ErrorCode.NOT_COORDINATOR
        assert results[follower.member_id].error == ErrorCode.NOT_COORDINATOR
        group = coord.groups["g"]
        assert group.state == GroupState.PREPARING_REBALANCE
        assert all(m.assignment == b"" for m in group.members.values())
    run(scenario)


# ---------------------------------------------------------------------- load, unload


def test_load_restores_offsets_and_the_stored_generation() -> None:
    async def scenario() -> None:
        log = Log()
        coord = coordinator(log)
        a, b = await stable_group(coord, 2)
        assert coord.commit("g", {("t", 0): OFFSET}) == ErrorCode.NONE
        assert coord.commit("simple", {("t", 1): OFFSET}) == ErrorCode.NONE

        reloaded = GroupCoordinator(Log(), 1, 0, 7 * 24 * 3600 * 1000)
        reloaded.load(0, log.batches[0])
        assert reloaded.offsets.get("g") == {("t", 0): OFFSET}
        assert reloaded.offsets.get("simple") == {("t", 1): OFFSET}
        group = reloaded.groups["g"]
        assert group.state == GroupState.STABLE and group.generation == a.generation
        assert group.members[b.member_id].assignment == b"a-" + b.member_id.encode()
        # the members carry on without a rebalance
        assert reloaded.heartbeat("g", b.member_id, None, b.generation) == ErrorCode.NONE
        synced = await reloaded.sync("g", b.member_id, None, b.generation, None, None, {})
        assert synced.assignment == b"a-" + b.member_id.encode()
    run(scenario)


def test_a_group_that_became_empty_loads_as_empty() -> None:
    async def scenario() -> None:
        log = Log()
        coord = coordinator(log)
        (a,) = await stable_group(coord, 1)
        coord.leave("g", [(a.member_id, None)])
        assert coord.groups["g"].state == GroupState.EMPTY
        reloaded = coordinator()
        reloaded.load(0, log.batches[0])
        assert reloaded.groups["g"].state == GroupState.EMPTY and reloaded.groups["g"].generation == a.generation + 1
    run(scenario)


def test_groups_of_a_partition_being_loaded_or_not_served_get_coordinator_errors() -> None:
    async def scenario() -> None:
        log = Log()
        source = coordinator(log)
        source.commit("g", {("t", 0): OFFSET})
        coord = GroupCoordinator(Log(), 1, 0, 7 * 24 * 3600 * 1000)
        assert (await join(coord)).error == ErrorCode.NOT_COORDINATOR
        seen: list[ErrorCode] = []

        def batches() -> Any:
            for batch in log.batches[0]:
                seen.append(coord.heartbeat("g", "m", None, 1))
                seen.append(coord.commit_check("g", "", None, -1))
                seen.append(coord.fetch_offsets("g")[0])
                seen.append(coord.list_groups()[0])
                yield batch
        coord.load(0, batches())
        assert set(seen) == {ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}
        assert coord.fetch_offsets("g") == (ErrorCode.NONE, {("t", 0): OFFSET})
        assert coord.list_groups() == (ErrorCode.NONE, coord.list_groups()[1])
        assert [g.group_id for g in coord.list_groups()[1]] == ["g"]
    run(scenario)


def test_unload_answers_parked_calls_and_forgets_the_partition() -> None:
    async def scenario() -> None:
        coord = coordinator(partitions=2)
        gid = next(g for g in (f"g{i}" for i in range(100)) if coord.partition_for(g) == 1)
        other = next(g for g in (f"g{i}" for i in range(100)) if coord.partition_for(g) == 0)
        assert coord.commit(gid, {("t", 0): OFFSET}) == ErrorCode.NONE
        assert coord.commit(other, {("t", 0): OFFSET}) == ErrorCode.NONE
        consumer = ConsumerGroupCoordinator(lambda t: None, availability=coord.status)
        coord.consumer_groups = consumer
        results: list[JoinResult] = []

        async def parked() -> None:
            results.append(await join(coord, group=gid))
        async with trio.open_nursery() as n:
            n.start_soon(parked)
            n.start_soon(parked)
            await trio.sleep(0.01)
            assert not results  # both wait for the rebalance (no ticks here)
            coord.unload(1)
        assert [r.error for r in results] == [ErrorCode.NOT_COORDINATOR] * 2
        assert gid not in coord.groups and coord.offsets.get(gid) == {}
        assert (await join(coord, group=gid)).error == ErrorCode.NOT_COORDINATOR
        assert coord.describe(gid).error == ErrorCode.NOT_COORDINATOR
        assert consumer.heartbeat(ConsumerHeartbeat(gid, "", 0, subscribed_topic_names=["t"]), "c", "h").error \
            == ErrorCode.NOT_COORDINATOR
        assert coord.offsets.get(other) == {("t", 0): OFFSET}  # the other partition is still served
    run(scenario)
