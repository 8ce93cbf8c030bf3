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
