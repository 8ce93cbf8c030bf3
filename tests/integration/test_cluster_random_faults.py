"""A randomized fault run on a 3-broker cluster (real ZooKeeper, `pykbroker serve` processes): a seeded
schedule SIGKILLs and restarts, SIGSTOPs and SIGCONTs, SIGTERMs (controlled shutdown, at times SIGKILLed
during it) and restarts one broker at a time (the next fault waits until the cluster is whole again, or at
times only until the broker is back, still catching up), while an idempotent acks=all producer writes 4
partitions (RF 3, min.insync.replicas=2), a group member consumes and commits, and a transactional
producer writes small transactions (5-20 records over the 3 partitions of another topic, RF 3), committing
most and aborting some (seeded); faults fall mostly on leaders, the transaction coordinator's
(__transaction_state) among them. At the end, once every broker is back with the full ISR:

* every acknowledged record is there exactly once, and every partition holds its records in the order
  they were sent (records not acknowledged may be there or not, but never twice);
* the group member went on consuming through the faults, up to the end of every partition, offset after
  offset (it goes back only to its committed offsets when it rejoins), and what it read is what the final
  log holds at those offsets;
* after each fault, the group's committed offsets are at least those acknowledged before it; a new
  member of the group starts at (not before) the offsets last committed successfully;
* a read_committed consumer reads every record of every transaction whose commit was acknowledged exactly
  once, no record of an aborted one (aborted on purpose, or because librdkafka said it must be), and of a
  transaction whose commit failed fatally all its records or none; it reaches the high watermark of every
  partition within 60 s (the last stable offset gets there: no transaction left open);
* every broker lists the three brokers live, every partition has a leader and an ISR of three.

PYKBROKER_FAULT_SEED=<int> replays a schedule (the seed is printed); PYKBROKER_FAULT_SECONDS=<s> sets how
long faults are injected (default 40 s; the whole test takes about 60-80 s). PYKBROKER_FAULT_DOUBLE=1 adds
faults of two brokers at once (a quarter of them): then the producer's records must wait (acks=all,
NOT_ENOUGH_REPLICAS is retriable) and none sent meanwhile may be acknowledged before a broker is back.
On a failure the seed, the schedule that ran and the brokers' logs (broker-*/broker-stderr.log) are printed.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration/test_cluster_random_faults.py -q
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from pykbroker.tools.zookeeper import RunningZooKeeper

pytestmark = pytest.mark.cluster

TOPIC = "faults"
PARTITIONS = 4
GROUP = "fault-group"
OFFSETS_PARTITIONS = 3
TXN_TOPIC = "faults-txn"
TXN_PARTITIONS = 3
TXN_STATE_TOPIC = "__transaction_state"


# ---------------------------------------------------------------------------------------------- load


@dataclass
class ProducerLog:
    """What the producer sent, and what was acknowledged or failed, per partition (values are sequences)."""

    sent: dict[int, int] = field(default_factory=lambda: {p: 0 for p in range(PARTITIONS)})
    acked: dict[int, list[int]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    failed: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    errors: list[str] = field(default_factory=list)
    acked_at: list[tuple[float, int, int]] = field(default_factory=list)  # (time.monotonic(), partition, sequence)
    #: per partition, time.monotonic() when each sequence was handed to the producer
    sent_at: dict[int, list[float]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})


class LoadProducer(threading.Thread):
    """An idempotent acks=all confluent-kafka producer writing "<partition>:<sequence>" round-robin over
    the partitions, about 400 records a second, until told to stop; then it flushes.

    One request in flight per connection, and no message timeout within the run: librdkafka (2.16) bumps
    the producer epoch when a request that is not the first in flight gets OUT_OF_ORDER_SEQUENCE_NUMBER (the
    one before it failed, NOT_LEADER_OR_FOLLOWER from a broker about to lead, say), or when a message times
    out, and then sends again, under new sequences, the records of every partition whose last requests
    failed as "possibly persisted" (the old leader's connection closed): duplicates, whatever the broker
    (Apache Kafka answers the same; confluentinc/librdkafka#4953)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True, name="load-producer")
        self.log = ProducerLog()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.remaining = -1
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "message.timeout.ms": 120000, "retry.backoff.ms": 100, "retry.backoff.max.ms": 1000,
            "max.in.flight.requests.per.connection": 1,
            "topic.metadata.refresh.interval.ms": 2000, "socket.timeout.ms": 10000,
            "error_cb": self._error, "log_level": 2})

    def _error(self, err: object) -> None:
        with self.lock:
            self.log.errors.append(str(err))

    def _delivered(self, err: object, msg: object) -> None:
        p, seq = (int(x) for x in msg.value().split(b":"))  # type: ignore[attr-defined]
        with self.lock:
            if err is None:
                self.log.acked[p].append(seq)
                self.log.acked_at.append((time.monotonic(), p, seq))
            else:
                self.log.failed[p].append((seq, str(err)))

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            p = i % PARTITIONS
            seq = self.log.sent[p]
            try:
                self.producer.produce(TOPIC, f"{p}:{seq}".encode(), partition=p, on_delivery=self._delivered)
            except BufferError:
                self.producer.poll(0.1)
                continue
            self.log.sent[p] = seq + 1
            self.log.sent_at[p].append(time.monotonic())
            i += 1
            self.producer.poll(0)
            if i % 4 == 0:
                time.sleep(0.01)
        self.remaining = self.producer.flush(120)

    def tail(self, count: int) -> int:
        """``count`` more records per partition once the run is over (the caller's thread); records not delivered."""
        for p in range(PARTITIONS):
            for _ in range(count):
                seq = self.log.sent[p]
                self.producer.produce(TOPIC, f"{p}:{seq}".encode(), partition=p, on_delivery=self._delivered)
                self.log.sent[p] = seq + 1
                self.log.sent_at[p].append(time.monotonic())
        remaining = self.producer.flush(60)
        del self.producer  # no more logging from its threads once the brokers are gone
        return remaining


@dataclass
class MemberLog:
    consumed: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    committed_ok: dict[int, int] = field(default_factory=dict)    # last offset a commit was acknowledged for
    committed_tried: dict[int, int] = field(default_factory=dict)  # highest offset ever sent in a commit
    commits_ok: int = 0
    commit_failures: list[str] = field(default_factory=list)
    #: (partition, offset read before, offset read next, last acknowledged commit then) whenever the next
    #: offset read is not the one after: a rewind to the committed offset when it rejoins, nothing else
    jumps: list[tuple[int, int, int, int | None]] = field(default_factory=list)


class GroupMember(threading.Thread):
    """A confluent-kafka group member reading the topic and committing its position every second."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True, name="group-member")
        self.log = MemberLog()
        self.stop_event = threading.Event()
        self.position: dict[int, int] = {}
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000, "socket.timeout.ms": 10000})
        self.consumer.subscribe([TOPIC], on_assign=self._assigned)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:  # it starts again from the committed offsets
            self.position.pop(tp.partition, None)

    def _commit(self) -> None:
        offsets = [TopicPartition(TOPIC, p, o) for p, o in sorted(self.position.items())]
        if not offsets:
            return
        for tp in offsets:
            self.log.committed_tried[tp.partition] = max(self.log.committed_tried.get(tp.partition, -1), tp.offset)
        try:
            result = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            self.log.commit_failures.append(str(e))
            return
        for tp in result or []:
            if tp.error is None:
                self.log.committed_ok[tp.partition] = tp.offset
            else:
                self.log.commit_failures.append(str(tp.error))
        self.log.commits_ok += 1

    def run(self) -> None:
        last_commit = time.monotonic()
        while not self.stop_event.is_set():
            msg = self.consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                p, seq = (int(x) for x in msg.value().split(b":"))
                consumed = self.log.consumed[msg.partition()]
                if consumed and msg.offset() != consumed[-1][0] + 1:
                    self.log.jumps.append((p, consumed[-1][0], msg.offset(), self.log.committed_ok.get(p)))
                consumed.append((msg.offset(), seq))
                self.position[msg.partition()] = msg.offset() + 1
            if time.monotonic() - last_commit >= 1:
                self._commit()
                last_commit = time.monotonic()
        self._commit()
        self.consumer.close()

    def seen(self, partition: int) -> set[int]:
        return {seq for _, seq in list(self.log.consumed[partition])}


class CommitWatch:
    """The group's committed offsets survive each fault: after it, every partition's is at least the last
    one acknowledged to the member before it (commits only move forward: a member that rejoins resumes
    at the committed offset)."""

    def __init__(self, bootstrap: str, log: MemberLog) -> None:
        self.log = log
        self.before: dict[int, int] = {}
        self.problems: list[str] = []
        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})

    def snapshot(self) -> None:
        self.before = dict(self.log.committed_ok)

    def check(self, when: str) -> None:
        tps = [TopicPartition(TOPIC, p) for p in sorted(self.before)]
        if not tps:
            return

        def read() -> dict[int, int] | None:
            got = self.reader.committed(tps, timeout=10)
            return None if any(tp.error for tp in got) else {tp.partition: tp.offset for tp in got}

        committed = wait_for(f"the group's committed offsets {when}", read, 60, 0.5)
        assert isinstance(committed, dict)
        behind = {p: (committed[p], o) for p, o in self.before.items() if committed[p] < o}
        if behind:
            self.problems.append(f"{GROUP} {when}: committed offsets went back (partition: (now, acknowledged "
                                 f"before the fault)) {behind}")

    def close(self) -> None:
        self.reader.close()


@dataclass
class TxnLog:
    """Each transaction's records (partition, value) and its outcome: "committed" (commit acknowledged),
    "aborted" (aborted on purpose, or because librdkafka said it must be), "unknown" (the commit raised a
    fatal error: it may have been committed or not, all or nothing)."""

    records: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    outcome: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    producers: int = 0  # producers created (a new one after a fatal error)


class TxnProducer(threading.Thread):
    """A transactional confluent-kafka producer writing small transactions (5-20 records over the
    partitions of TXN_TOPIC, RF 3) until told to stop, committing most and aborting some (seeded).
    commit/abort are retried while the error is retriable; when it says the transaction must be aborted,
    it is aborted (and counted so); a fatal error leaves a commit's outcome unknown (an abort's stays
    aborted: it was never asked to commit) and a new producer with the same transactional.id takes over
    (its InitProducerId fences the old one and ends what it left open)."""

    TXN_ID = "fault-txn"

    def __init__(self, bootstrap: str, seed: int) -> None:
        super().__init__(daemon=True, name="txn-producer")
        self.bootstrap = bootstrap
        self.rng = random.Random(seed ^ 0x5EED)
        self.log = TxnLog()
        self.stop_event = threading.Event()
        self.failure: BaseException | None = None
        self.producer: Producer | None = None

    def _error(self, err: object) -> None:
        self.log.errors.append(str(err))

    def _new_producer(self) -> Producer:
        self.log.producers += 1
        p = Producer({"bootstrap.servers": self.bootstrap, "transactional.id": self.TXN_ID,
                      "transaction.timeout.ms": 60000, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                      "message.timeout.ms": 60000, "retry.backoff.ms": 100, "retry.backoff.max.ms": 1000,
                      "topic.metadata.refresh.interval.ms": 2000, "socket.timeout.ms": 10000,
                      "error_cb": self._error, "log_level": 2})
        self._retry(lambda: p.init_transactions(30), "init_transactions", deadline_s=180)
        return p

    def _retry(self, call: Callable[[], object], what: str, deadline_s: float = 120) -> None:
        """``call`` again while it raises a retriable KafkaException (up to ``deadline_s``)."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                call()
                return
            except KafkaException as e:
                err = e.args[0]
                if not err.retriable() or time.monotonic() > deadline:
                    raise
                self.log.retries += 1
                self.log.errors.append(f"{what}: {err}")
                time.sleep(0.2)

    def run(self) -> None:
        try:
            self.producer = self._new_producer()
            txn = 0
            while not self.stop_event.is_set():
                self._one(txn)
                txn += 1
                time.sleep(self.rng.uniform(0, 0.2))
        except BaseException as e:  # reported by the test
            self.failure = e
        finally:
            self.producer = None  # no more logging from its threads once the brokers are gone

    def _one(self, txn: int) -> None:
        assert self.producer is not None
        p = self.producer
        count = self.rng.randint(5, 20)
        commit = self.rng.random() < 0.75
        records = [(self.rng.randrange(TXN_PARTITIONS), f"{txn}:{i}".encode()) for i in range(count)]
        self.log.records[txn] = records
        self.log.outcome[txn] = "pending"
        try:
            p.begin_transaction()
            for partition, value in records:
                while True:
                    try:
                        p.produce(TXN_TOPIC, value, partition=partition)
                        break
                    except BufferError:
                        p.poll(0.1)
                p.poll(0)
            if commit:
                self._retry(lambda: p.commit_transaction(30), "commit_transaction")
                self.log.outcome[txn] = "committed"
            else:
                self._retry(lambda: p.abort_transaction(30), "abort_transaction")
                self.log.outcome[txn] = "aborted"
        except KafkaException as e:
            err = e.args[0]
            self.log.errors.append(f"transaction {txn} ({'commit' if commit else 'abort'}): {err}")
            if err.txn_requires_abort() and not err.fatal():
                try:
                    self._retry(lambda: p.abort_transaction(30), "abort_transaction")
                    self.log.outcome[txn] = "aborted"
                    return
                except KafkaException as e2:
                    err = e2.args[0]
                    self.log.errors.append(f"transaction {txn} abort: {err}")
            # fatal (fenced, say), or an abort that failed: the outcome of a commit is unknown; a transaction
            # never asked to commit stays aborted; a new producer ends what this one left open
            self.log.outcome[txn] = "unknown" if commit else "aborted"
            self.producer = None
            del p
            self.producer = self._new_producer()


# ---------------------------------------------------------------------------------------------- faults


class FaultRun:
    """Applies a seeded random schedule of faults, one broker at a time (two at times with ``double``),
    recording what ran for the report and when fewer than two brokers could have acknowledged."""

    #: sigterm-sigkill: SIGKILL within a second of SIGTERM, during the controlled shutdown
    ACTIONS = ("sigkill", "sigstop", "sigterm", "sigterm-sigkill")

    def __init__(self, cluster: LocalCluster, seed: int, seconds: float, double: bool) -> None:
        self.cluster, self.rng, self.seconds, self.double = cluster, random.Random(seed), seconds, double
        self.seed = seed
        self.t0 = time.monotonic()
        self.ran: list[str] = []
        #: (from, to) in time.monotonic(): two brokers down or stopped (no acks=all write sent meanwhile completes)
        self.no_quorum: list[tuple[float, float]] = []
        self.commits: CommitWatch | None = None

    def note(self, what: str) -> None:
        self.ran.append(f"{time.monotonic() - self.t0:7.2f}s {what}")

    def run(self) -> None:
        deadline = self.t0 + self.seconds
        while time.monotonic() < deadline:
            count = 2 if self.double and self.rng.random() < 0.25 else 1
            targets = self.targets(count)
            faults = [(self.rng.choice(self.ACTIONS), b) for b in targets]
            if self.commits is not None:
                self.commits.snapshot()
            self.fault(faults, self.rng.uniform(0.5, 6.0))  # about 3 zookeeper.session.timeout.ms at most
            when = "after " + ", ".join(f"{a} of broker {b}" for a, b in faults)
            if self.rng.random() < 0.4:  # the next fault may come while the broker back catches up
                wait_for(f"every broker live {when}", lambda: all(
                    self.cluster.live_brokers(i) == sorted(self.cluster.brokers) for i in self.cluster.brokers), 90)
                self.note("every broker live")
            else:
                self.wait_whole(when)
            if self.commits is not None:
                self.commits.check(when)
            time.sleep(self.rng.uniform(0.2, 2.0))

    def targets(self, count: int) -> list[int]:
        """Mostly leaders (of the topic's partitions or of __consumer_offsets'): their faults move leadership."""
        ids = sorted(self.cluster.brokers)
        leaders: list[int] = []
        if self.rng.random() < 0.6:
            try:
                for topic in (TOPIC, "__consumer_offsets", TXN_STATE_TOPIC, TXN_TOPIC):
                    md = self.cluster.metadata(ids[0], topic)
                    leaders += [p.leader_id for p in md.topics[0].partitions  # type: ignore[attr-defined]
                                if p.leader_id in self.cluster.brokers]
            except Exception:  # no matter: a random broker then
                leaders = []
        first = self.rng.choice(sorted(leaders) or ids)
        return [first] + self.rng.sample([i for i in ids if i != first], count - 1)

    def fault(self, faults: list[tuple[str, int]], hold: float) -> None:
        for n, (action, broker_id) in enumerate(faults):
            b = self.cluster.brokers[broker_id]
            assert b.proc is not None
            self.note(f"{action} broker {broker_id}" + (f" for {hold:.2f}s" if n == len(faults) - 1 else ""))
            if action == "sigkill":
                self.cluster.kill(broker_id)
            elif action == "sigstop":
                self.cluster.stop(broker_id)
            elif action == "sigterm-sigkill":
                b.proc.send_signal(signal.SIGTERM)
                time.sleep(self.rng.uniform(0, 1))
                self.cluster.kill(broker_id)
            else:
                b.proc.send_signal(signal.SIGTERM)
                code = b.proc.wait(60)
                self.note(f"broker {broker_id} exited with {code} after SIGTERM")
                assert code == 0, f"broker {broker_id} exited with {code} on SIGTERM"
        quorum_lost = time.monotonic()
        time.sleep(hold)
        if len(faults) > 1:
            self.no_quorum.append((quorum_lost, time.monotonic()))
        for action, broker_id in faults:
            if action == "sigstop":
                self.cluster.resume(broker_id)
            else:
                self.cluster.brokers[broker_id].start(60)
            self.note(f"broker {broker_id} back")

    def wait_whole(self, when: str, timeout_s: float = 90) -> None:
        wait_for(f"the cluster to come back whole {when}", lambda: whole(self.cluster), timeout_s, 0.25)
        self.note("cluster whole")


def whole(cluster: LocalCluster) -> bool:
    """Every broker lists all three live, and every partition of the topics, of __consumer_offsets and of
    __transaction_state has a leader and an ISR of all three, as each broker reports it."""
    for via in cluster.brokers:
        if cluster.live_brokers(via) != sorted(cluster.brokers):
            return False
        for topic, count in ((TOPIC, PARTITIONS), ("__consumer_offsets", OFFSETS_PARTITIONS),
                             (TXN_TOPIC, TXN_PARTITIONS), (TXN_STATE_TOPIC, 1)):
            md = cluster.metadata(via, topic)
            parts = md.topics[0].partitions  # type: ignore[attr-defined]
            if md.topics[0].error_code != 0 or len(parts) != count:  # type: ignore[attr-defined]
                return False
            if any(p.leader_id not in cluster.brokers or sorted(p.isr_nodes) != sorted(cluster.brokers)
                   for p in parts):
                return False
    return True


# ---------------------------------------------------------------------------------------------- checks


def read_everything(bootstrap: str, ends: dict[int, int]) -> dict[int, list[tuple[int, int]]]:
    """(offset, sequence) of every record of every partition, read from offset 0 up to ``ends``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-checker", "enable.auto.commit": False,
                         "auto.offset.reset": "error"})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    out: dict[int, list[tuple[int, int]]] = {p: [] for p in range(PARTITIONS)}

    def done() -> bool:
        for msg in consumer.consume(500, 0.5):
            if msg.error() is None:
                p, seq = (int(x) for x in msg.value().split(b":"))
                assert p == msg.partition(), f"record {msg.value()!r} in partition {msg.partition()}"
                out[p].append((msg.offset(), seq))
            else:
                raise AssertionError(f"reading {TOPIC}: {msg.error()}")
        return all((out[p][-1][0] + 1 if out[p] else 0) >= ends[p] for p in range(PARTITIONS))

    try:
        wait_for("every record of every partition", done, 90, 0)
    finally:
        consumer.close()
    return out


def end_offsets(bootstrap: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-checker"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=20)[1] for p in range(PARTITIONS)}
    finally:
        c.close()


def check_partition(p: int, records: list[tuple[int, int]], acked: list[int], sent: int) -> list[str]:
    problems = []
    seqs = [seq for _, seq in records]
    dupes = sorted({s for s in seqs if seqs.count(s) > 1}) if len(set(seqs)) != len(seqs) else []
    if dupes:
        problems.append(f"{TOPIC}-{p}: duplicated sequences {dupes[:20]}")
    out_of_order = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
    if out_of_order:
        problems.append(f"{TOPIC}-{p}: out of order {out_of_order[:10]}")
    lost = sorted(set(acked) - set(seqs))
    if lost:
        problems.append(f"{TOPIC}-{p}: {len(lost)} acknowledged records lost: {lost[:20]}")
    unknown = [s for s in seqs if not 0 <= s < sent]
    if unknown:
        problems.append(f"{TOPIC}-{p}: sequences never sent {unknown[:10]}")
    offsets = [o for o, _ in records]
    if offsets != sorted(set(offsets)):
        problems.append(f"{TOPIC}-{p}: offsets not increasing")
    return problems


def check_member_read_committed_records(p: int, records: list[tuple[int, int]],
                                       consumed: list[tuple[int, int]]) -> list[str]:
    """What the group member read during the faults is what the log holds at those offsets in the end: a
    consumer never sees a record that a leader change truncates later (it reads up to the high watermark)."""
    final = dict(records)
    wrong = [(o, seq, final.get(o)) for o, seq in consumed if final.get(o) != seq]
    if wrong:
        return [f"{TOPIC}-{p}: the group member read (offset, sequence, final sequence) {wrong[:10]}: "
                f"records not in the final log at those offsets"]
    return []


def check_member_never_skipped_nor_reset(log: MemberLog) -> list[str]:
    """The member reads every offset in turn (no transactions: every offset holds a record) but when it
    rejoins the group and goes back to the committed offset, never below the last acknowledged commit (an
    offset reset to the earliest, after a wrong answer to its leader-epoch validation say)."""
    problems = []
    for p, before, after, acked in log.jumps:
        if after > before + 1:
            problems.append(f"{TOPIC}-{p}: the group member skipped from offset {before} to {after}")
        elif acked is not None and after < acked:
            problems.append(f"{TOPIC}-{p}: the group member went back from offset {before} to {after}, "
                            f"below its acknowledged commit {acked}")
    return problems


def check_new_member_resumes_at_commits(bootstrap: str, log: MemberLog, ends: dict[int, int]) -> list[str]:
    """A new member of the group gets the committed offsets: at least the last acknowledged commit, at most
    the highest offset ever committed (a commit that failed, timed out say, may still have been written)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
    problems = []
    try:
        committed = {tp.partition: tp.offset for tp in
                     c.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=30)}
        for p in range(PARTITIONS):
            low, high = log.committed_ok.get(p), log.committed_tried.get(p)
            if low is None:
                continue
            if not low <= committed[p] <= (high if high is not None else low):
                problems.append(f"{GROUP} {TOPIC}-{p}: committed {committed[p]}, expected between the last "
                                f"acknowledged commit {low} and the highest tried {high}")
        # and it really starts there: the first record it reads on each partition is at the committed offset
        c.subscribe([TOPIC])
        first: dict[int, int] = {}
        want = {p for p in range(PARTITIONS) if committed.get(p, -1) >= 0 and committed[p] < ends[p]}
        if want != set(range(PARTITIONS)):
            problems.append(f"{GROUP}: committed {committed}, end offsets {ends}: no commit below the end "
                            f"(records were produced after the last commit) on some partitions")

        def all_first() -> bool:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                first.setdefault(msg.partition(), msg.offset())
            return want <= set(first)

        wait_for("the new member to read from every partition with records after its commit", all_first, 60, 0)
        for p in want:
            if first[p] != committed[p]:
                problems.append(f"{GROUP} {TOPIC}-{p}: a new member read first offset {first[p]}, "
                                f"committed {committed[p]}")
    finally:
        c.close()
    return problems


def check_no_acks_without_quorum(log: ProducerLog, windows: list[tuple[float, float]],
                                slack_s: float = 0.5) -> list[str]:
    """While two of the three brokers are down or stopped, a record sent meanwhile reaches one replica only:
    it may not be acknowledged before one of them is back (min.insync.replicas=2). Records sent before
    may be: a follower stopped after it fetched them stays in the ISR until its session expires, and the
    ISR dropping the other (dead before it fetched them) lets the high watermark pass them, as in Kafka."""
    problems = []
    for start, end in windows:
        during = [(p, seq) for t, p, seq in log.acked_at if t < end and log.sent_at[p][seq] > start + slack_s]
        if during:
            problems.append(f"{len(during)} records acknowledged while two brokers were down "
                            f"({end - start:.1f} s window): {during[:10]}")
    return problems


def read_transactions(bootstrap: str, timeout_s: float = 60) -> tuple[list[tuple[int, bytes]], list[str]]:
    """(partition, value) of every record a read_committed consumer reads from TXN_TOPIC, up to the high
    watermark of every partition: it must get there within ``timeout_s`` (the last stable offset reaches
    the end: no transaction left open). Problems found on the way are returned."""
    plain = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-txn-checker"})
    try:
        hwm = {p: plain.get_watermark_offsets(TopicPartition(TXN_TOPIC, p), timeout=20)[1]
               for p in range(TXN_PARTITIONS)}
    finally:
        plain.close()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-txn-checker", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "error"})
    consumer.assign([TopicPartition(TXN_TOPIC, p, 0) for p in range(TXN_PARTITIONS)])
    out: list[tuple[int, bytes]] = []
    problems: list[str] = []
    lso: dict[int, int] = {}

    def at_end() -> bool:
        for msg in consumer.consume(500, 0.5):
            if msg.error() is None:
                out.append((msg.partition(), msg.value()))
            else:
                raise AssertionError(f"reading {TXN_TOPIC}: {msg.error()}")
        for p in range(TXN_PARTITIONS):  # a read_committed consumer's high watermark is the last stable offset
            lso[p] = consumer.get_watermark_offsets(TopicPartition(TXN_TOPIC, p), timeout=10)[1]
        positions = {tp.partition: tp.offset for tp in consumer.position(
            [TopicPartition(TXN_TOPIC, p) for p in range(TXN_PARTITIONS)])}
        return all(lso[p] >= hwm[p] and positions[p] >= hwm[p] for p in range(TXN_PARTITIONS))

    try:
        wait_for(f"a read_committed consumer of {TXN_TOPIC} to reach the high watermarks {hwm} "
                 f"(last stable offsets {lso}): a transaction left open?", at_end, timeout_s, 0)
        for msg in consumer.consume(500, 1.0):  # nothing more
            if msg.error() is None:
                out.append((msg.partition(), msg.value()))
    except AssertionError as e:
        problems.append(str(e))
    finally:
        consumer.close()
    return out, problems


def check_transactions(log: TxnLog, read: list[tuple[int, bytes]]) -> list[str]:
    """Every record of every acknowledged commit exactly once, in its partition; none of an aborted
    transaction; a transaction of unknown outcome all or nothing."""
    problems = []
    counts = Counter(read)
    dupes = [r for r, n in counts.items() if n > 1]
    if dupes:
        problems.append(f"{TXN_TOPIC}: records read more than once (partition, value) {dupes[:10]}")
    by_txn: dict[int, set[tuple[int, bytes]]] = {}
    for partition, value in counts:
        txn = int(value.split(b":")[0])
        if txn not in log.records:
            problems.append(f"{TXN_TOPIC}: record {value!r} of no transaction sent")
            continue
        by_txn.setdefault(txn, set()).add((partition, value))
    for txn, outcome in sorted(log.outcome.items()):
        want, got = set(log.records[txn]), by_txn.get(txn, set())
        if got - want:
            problems.append(f"{TXN_TOPIC}: transaction {txn}: records in the wrong partition {sorted(got - want)[:5]}")
        if outcome == "committed" and got != want:
            problems.append(f"{TXN_TOPIC}: committed transaction {txn}: {len(want - got)} of {len(want)} "
                            f"records missing {sorted(want - got)[:5]}")
        elif outcome == "aborted" and got:
            problems.append(f"{TXN_TOPIC}: aborted transaction {txn}: {len(got)} records visible {sorted(got)[:5]}")
        elif outcome in ("unknown", "pending") and got and got != want:
            problems.append(f"{TXN_TOPIC}: transaction {txn} ({outcome}): {len(got)} of {len(want)} records "
                            f"visible, not all or nothing")
    return problems


# ---------------------------------------------------------------------------------------------- the run


def test_random_faults_keep_acknowledged_records_order_and_committed_offsets(
        zookeeper: RunningZooKeeper, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("PYKBROKER_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
    seconds = float(os.environ.get("PYKBROKER_FAULT_SECONDS") or 40)
    with capsys.disabled():
        print(f"\nrandom faults: seed {seed} (PYKBROKER_FAULT_SEED={seed} replays it), {seconds:.0f} s of faults, "
              f"logs in {tmp_path}/broker-*/broker-stderr.log")
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2", group_initial_rebalance_delay_ms="0",
                       offsets_topic_num_partitions=str(OFFSETS_PARTITIONS),
                       replica_high_watermark_checkpoint_interval_ms="500") as cluster:
        double = os.environ.get("PYKBROKER_FAULT_DOUBLE", "0") not in ("", "0")
        faults = FaultRun(cluster, seed, seconds, double)
        started = time.monotonic()
        try:
            _run(cluster, faults, capsys)
        except BaseException:
            with capsys.disabled():
                rerun = f"PYKBROKER_FAULT_SEED={seed} PYKBROKER_FAULT_SECONDS={seconds:.0f}" + \
                    (" PYKBROKER_FAULT_DOUBLE=1" if double else "")
                print(f"\nrandom faults FAILED: seed {seed} (rerun with {rerun}), "
                      f"after {time.monotonic() - started:.1f} s")
                print("schedule that ran:\n  " + "\n  ".join(faults.ran))
                print("broker logs:\n  " + "\n  ".join(b.stderr.name for b in cluster.brokers.values()))
            raise


def _run(cluster: LocalCluster, faults: FaultRun, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.create_topic(TOPIC, partitions=PARTITIONS, replication=3)
    cluster.create_topic(TXN_TOPIC, partitions=TXN_PARTITIONS, replication=3)
    producer = LoadProducer(cluster.bootstrap)
    member = GroupMember(cluster.bootstrap)
    txns = TxnProducer(cluster.bootstrap, faults.seed)
    faults.commits = commits = CommitWatch(cluster.bootstrap, member.log)
    producer.start()
    member.start()
    txns.start()
    try:
        try:
            wait_for("the group member to consume and commit, and a transaction to commit, before the faults",
                     lambda: member.log.commits_ok > 0 and all(member.log.consumed.values())
                     and "committed" in txns.log.outcome.values(), 60)
            faults.wait_whole("before the faults")
            faults.t0 = time.monotonic()
            faults.run()
        finally:
            commits.close()
            producer.stop_event.set()
            txns.stop_event.set()
            producer.join(150)
            txns.join(150)
        faults.note("producers stopped")
        assert not txns.is_alive(), "the transactional producer did not end its last transaction"
        if txns.failure is not None:
            raise AssertionError(f"the transactional producer failed: {txns.failure!r}") from txns.failure
        faults.wait_whole("at the end")
        assert not producer.is_alive() and producer.remaining == 0, f"{producer.remaining} records not delivered"
        # the member goes on consuming: it reaches the end of every partition
        wait_for("the group member to reach the end of every partition",
                 lambda: all(set(producer.log.acked[p]) <= member.seen(p) for p in range(PARTITIONS)), 90, 0.5)
    finally:
        member.stop_event.set()
        member.join(60)
    log = producer.log
    faults.note("member stopped")
    # records after the group's last commit, so that a new member has somewhere to start from
    assert producer.tail(25) == 0, "records produced after the run not delivered"
    ends = end_offsets(cluster.bootstrap)
    records = read_everything(cluster.bootstrap, ends)
    problems = [problem for p in range(PARTITIONS)
                for problem in check_partition(p, records[p], log.acked[p], log.sent[p])]
    problems += [problem for p in range(PARTITIONS)
                 for problem in check_member_read_committed_records(p, records[p], member.log.consumed[p])]
    problems += check_new_member_resumes_at_commits(cluster.bootstrap, member.log, ends)
    problems += check_no_acks_without_quorum(log, faults.no_quorum)
    problems += commits.problems
    problems += check_member_never_skipped_nor_reset(member.log)
    txn_read, txn_problems = read_transactions(cluster.bootstrap)
    problems += txn_problems + check_transactions(txns.log, txn_read)
    faults.wait_whole("after the checks", 60)  # an ISR may shrink a moment on a loaded machine
    acked = len(log.acked_at)
    failed = sum(map(len, log.failed.values()))
    errors = Counter(e.split(",")[0] for e in log.errors)  # KafkaError{code=...: how many of each
    with capsys.disabled():
        print(f"\nrandom faults: {len(faults.ran)} steps; {acked} records acknowledged, {failed} failed, "
              f"{sum(map(len, records.values()))} in the log; {member.log.commits_ok} commits acknowledged, "
              f"{len(member.log.commit_failures)} failed {sorted(set(member.log.commit_failures))[:5]}, "
              f"{len(member.log.jumps)} rewinds; {len(faults.no_quorum)} two-broker faults; "
              f"producer errors: {dict(errors)}")
        outcomes = Counter(txns.log.outcome.values())
        print(f"  transactions: {dict(outcomes)}, {len(txn_read)} records read committed, {txns.log.retries} "
              f"retries, {txns.log.producers} producers; errors: "
              f"{dict(Counter(e.split(',')[0] for e in txns.log.errors).most_common(6))}")
        print("  " + "\n  ".join(faults.ran))
    assert not problems, "\n".join(problems)
