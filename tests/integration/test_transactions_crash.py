"""A broker SIGKILLed in the middle of transactions keeps every guarantee after restart:
committed transactions stay committed, an open one is aborted when its producer returns, and
read_committed readers see exactly the committed records."""

from __future__ import annotations

from pathlib import Path

from child_broker import ChildBroker
from confluent_kafka import Producer
from test_transactions import consume, create, producer, transaction


def test_sigkill_mid_transaction_then_abort_and_commit(tmp_path: Path, topic_name: str) -> None:
    broker = ChildBroker(tmp_path / "data", ["transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
                                             "log.flush.interval.messages=1"])
    try:
        broker.start()
        create(broker.bootstrap, topic_name)
        p = producer(broker.bootstrap, "txn-crash")
        transaction(p, topic_name, [b"a0", b"a1"], commit=True)
        p.begin_transaction()
        for v in (b"open0", b"open1", b"open2"):
            p.produce(topic_name, v, partition=0)
        p.flush(10)
        broker.kill()  # the transaction is open, its records on disk, no marker
        del p
        broker.start()
        again = producer(broker.bootstrap, "txn-crash")  # fences the old epoch, aborts the open transaction
        transaction(again, topic_name, [b"c0"], commit=True)
        again.begin_transaction()
        again.produce(topic_name, b"committed-before-kill", partition=0)
        again.commit_transaction(10)
        broker.kill()  # right after the commit was acknowledged
        broker.start()
        committed = [b"a0", b"a1", b"c0", b"committed-before-kill"]
        assert consume(broker.bootstrap, topic_name, "read_committed", len(committed)) == committed
        everything = consume(broker.bootstrap, topic_name, "read_uncommitted", 7)
        assert everything == [b"a0", b"a1", b"open0", b"open1", b"open2", b"c0", b"committed-before-kill"]
        plain = Producer({"bootstrap.servers": broker.bootstrap})  # the partition still takes writes
        plain.produce(topic_name, b"plain", partition=0)
        plain.flush(10)
        assert consume(broker.bootstrap, topic_name, "read_committed", 5)[-1] == b"plain"
    finally:
        broker.close()


def test_sigkill_with_transactions_v2(tmp_path: Path, topic_name: str) -> None:
    """A Kafka 4 producer's flow (Produce v12 adds, EndTxn v5 bumps) across two SIGKILLs: the bumped
    epoch is durable once EndTxn answered, and an open v2 transaction is aborted by the next
    InitProducerId with the fence's two bumps, as Kafka 4.4 does."""
    import time

    from test_transactions import describe_transaction
    from test_transactions_v2 import end, produce

    from pykbroker.protocol.errors import ErrorCode
    from pykbroker.wire_client import WireClient

    def init(client: WireClient) -> tuple[int, int]:
        deadline = time.monotonic() + 10
        while True:  # CONCURRENT_TRANSACTIONS while a fenced transaction is aborted, LOAD while loading
            r = client.request(22, 5, {"transactional_id": "v2-crash", "transaction_timeout_ms": 60_000,
                                       "producer_id": -1, "producer_epoch": -1})
            if r.error_code == 0 or time.monotonic() > deadline:
                assert r.error_code == 0, r
                return r.producer_id, r.producer_epoch
            time.sleep(0.05)

    broker = ChildBroker(tmp_path / "data", ["log.flush.interval.messages=1"])
    try:
        broker.start()
        create(broker.bootstrap, topic_name)
        c = WireClient(broker.bootstrap)
        pid, epoch = init(c)
        assert produce(c, "v2-crash", topic_name, pid, epoch, 0).error_code == 0
        assert end(c, "v2-crash", pid, epoch, commit=True).producer_epoch == epoch + 1
        c.close()
        broker.kill()  # right after EndTxn v5 answered
        broker.start()
        state = describe_transaction(broker.bootstrap, "v2-crash")
        assert (state.transaction_state, state.producer_epoch) == ("CompleteCommit", epoch + 1)
        c = WireClient(broker.bootstrap)
        assert produce(c, "v2-crash", topic_name, pid, epoch, 1).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
        assert produce(c, "v2-crash", topic_name, pid, epoch + 1, 0).error_code == 0  # open at the kill
        c.close()
        broker.kill()
        broker.start()
        c = WireClient(broker.bootstrap)
        assert init(c) == (pid, epoch + 4)  # fence +1, the v2 abort +1 (marker), then this InitProducerId +1
        c.close()
        assert consume(broker.bootstrap, topic_name, "read_committed", 1) == [b"v0"]
        # (produce() names a value by its sequence: the aborted record of the second epoch is v0 too)
        assert consume(broker.bootstrap, topic_name, "read_uncommitted", 2) == [b"v0", b"v0"]
    finally:
        broker.close()
