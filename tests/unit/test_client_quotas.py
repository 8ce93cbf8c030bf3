"""Client quotas without sockets: Kafka's windowed rate, its throttle time, entity validation,
DescribeClientQuotas filters, precedence of quota levels, and the store's file form."""

from __future__ import annotations

import pytest

from pykbroker.protocol.errors import ErrorCode
from pykbroker.quotas import ClientQuotas
from pykbroker.quotas.entities import (
    CLIENT_ID, IP, MATCH_DEFAULT, MATCH_EXACT, MATCH_SPECIFIED, USER, QuotaError, QuotaFilter, validate_entity,
)
from pykbroker.quotas.rate import WindowedRate, throttle_time_ms
from pykbroker.quotas.store import Alteration, QuotaStore

MiB = 1 << 20


def test_a_new_rate_is_measured_over_samples_minus_one_windows() -> None:
    rate = WindowedRate(samples=11, window_ms=1000)
    rate.record(10 * MiB, now_ms=0)
    assert rate.window_size_ms(0) == 10_000
    assert rate.measure(0) == pytest.approx(MiB)  # 10 MiB in the first instant is 1 MiB/s: Kafka's burst
    rate.record(1, now_ms=0)
    assert rate.measure(0) > MiB


def test_old_samples_expire_and_the_window_grows_with_time() -> None:
    rate = WindowedRate(samples=2, window_ms=1000)
    rate.record(1000, now_ms=0)
    rate.record(1000, now_ms=1500)
    assert rate.window_size_ms(1500) == 1500
    assert rate.measure(1500) == pytest.approx(2000 / 1.5)
    assert rate.measure(5000) == 0  # both samples' last events are over samples * window old


def test_throttle_time_brings_the_rate_back_to_the_bound() -> None:
    # O * W / (W + X) = T  =>  X = (O - T) / T * W
    assert throttle_time_ms(2 * MiB, MiB, 10_000) == 10_000
    assert throttle_time_ms(MiB, MiB, 10_000) == 0


def test_a_flat_out_client_is_held_to_its_quota() -> None:
    """A simulated client sending 64 KiB requests as fast as the throttle lets it, for 20 s:
    one sample of one second holds it to the quota (within a percent) over every 5 s."""
    quotas = ClientQuotas(QuotaStore({((CLIENT_ID, None),): {"producer_byte_rate": float(MiB)}}), 1, 1)
    now, sent, marks = 0.0, 0, []
    while now < 20_000:
        sent += 64 * 1024
        now += 1 + quotas.produce.record("ANONYMOUS", "c", 64 * 1024, int(now))
        marks.append((now, sent))
    for start in (0, 5000, 10_000):
        inside = [s for t, s in marks if start <= t < start + 5000]
        assert (inside[-1] - inside[0]) / 5 / MiB == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("pairs, message", [
    ([], "Invalid empty client quota entity"),
    ([(USER, "a"), (USER, "b")], "duplicate entity entry user"),
    ([("group", "g")], "Unhandled client quota entity type: group"),
    ([(USER, "")], "Empty user not supported"),
    ([(IP, "10.0.0.1"), (USER, "a")], "IP entity should"),
    ([(IP, "not an address")], "is not a valid IP"),
])
def test_entities_kafka_refuses(pairs, message) -> None:
    with pytest.raises(QuotaError, match=message) as e:
        validate_entity(pairs, resolvable=frozenset())
    assert e.value.code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("ops, message", [
    ([("producer_byte_rate", 0.0)], "must be greater than 0"),
    ([("producer_byte_rate", 10.5)], "cannot be a fractional value"),
    ([("connection_creation_rate", 5.0)], "Invalid configuration key"),
    ([("producer_byte_rate", 1.0), ("producer_byte_rate", 2.0)], "Ignoring duplicate entity ClientQuotaEntity(entries={user=a})"),
])
def test_an_invalid_alteration_changes_nothing_of_its_entity(ops, message) -> None:
    store = QuotaStore({((USER, "a"),): {"consumer_byte_rate": 5.0}})
    new, results = store.alter([Alteration(((USER, "a"),), (("consumer_byte_rate", 9.0), *ops)),
                                Alteration(((CLIENT_ID, None),), (("request_percentage", 12.5),))])
    assert results[0].code == ErrorCode.INVALID_REQUEST and message in (results[0].message or "")
    assert results[1].code == ErrorCode.NONE
    assert new.entries == {((USER, "a"),): {"consumer_byte_rate": 5.0},
                           ((CLIENT_ID, None),): {"request_percentage": 12.5}}


def test_removing_the_last_key_removes_the_entity_and_the_file_round_trips() -> None:
    store, _ = QuotaStore().alter([Alteration(((USER, "a"), (CLIENT_ID, None)), (("producer_byte_rate", 100.0),)),
                                   Alteration(((IP, "::1"),), (("connection_creation_rate", 3.0),))])
    assert QuotaStore.from_json(store.to_json()) == store
    emptied, results = store.alter([Alteration(((IP, "::1"),), (("connection_creation_rate", None),))])
    assert results[0].code == 0 and list(emptied.entries) == [((CLIENT_ID, None), (USER, "a"))]


def test_describe_filters_match_as_kafka() -> None:
    store = QuotaStore({((USER, "a"),): {"producer_byte_rate": 1.0},
                        ((CLIENT_ID, "c"), (USER, "a")): {"producer_byte_rate": 2.0},
                        ((CLIENT_ID, None),): {"producer_byte_rate": 3.0}})

    def described(components, strict=False):
        return [e for e, _ in store.describe(QuotaFilter.from_components(components, strict))]

    assert len(described([])) == 3
    assert described([(USER, MATCH_EXACT, "a")], strict=True) == [((USER, "a"),)]
    assert len(described([(USER, MATCH_EXACT, "a")])) == 2
    assert described([(CLIENT_ID, MATCH_DEFAULT, None)]) == [((CLIENT_ID, None),)]
    assert len(described([(CLIENT_ID, MATCH_SPECIFIED, None)])) == 2
    with pytest.raises(QuotaError) as e:
        QuotaFilter.from_components([("group", MATCH_EXACT, "g")], False)
    assert e.value.code == ErrorCode.UNSUPPORTED_VERSION
    with pytest.raises(QuotaError, match="cannot appear more than once"):
        QuotaFilter.from_components([(USER, MATCH_EXACT, "a"), (USER, MATCH_DEFAULT, None)], False)


def test_the_most_specific_level_wins_and_clients_of_a_user_quota_share_it() -> None:
    store = QuotaStore({((USER, None),): {"producer_byte_rate": 10.0},
                        ((CLIENT_ID, "fast"), (USER, "alice")): {"producer_byte_rate": 30.0},
                        ((CLIENT_ID, None),): {"producer_byte_rate": 50.0}})
    produce = ClientQuotas(store, 11, 1).produce
    assert produce.limit(produce.tags("alice", "fast")) == 30.0
    assert produce.tags("alice", "slow") == produce.tags("alice", "other") == ("alice", "")  # <default> user
    assert produce.limit(produce.tags("alice", "slow")) == 10.0
    consume = ClientQuotas(store, 11, 1).fetch
    assert consume.record("alice", "x", 10 * MiB, now_ms=0) == 0  # no consumer quota: never throttled
    assert consume.max_value_in_window("alice", "x") == float("inf")
    assert produce.max_value_in_window("bob", "y") == 10.0 * 10
