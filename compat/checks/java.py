"""The Apache Kafka Java client (kafka-clients 3.9; java4.py runs these checks with 4.4), driven through
the project's KafkaCheck CLI (tests/java/KafkaCheck.java, built by tests/tools/setup_java_client.sh into .tools/).

Topics for the checks are created (and deleted afterwards) with confluent-kafka's admin when it is
importable, saving a JVM start each; metadata and admin-topics always use the Java admin.
KafkaCheck reports counts, per-partition offset ranges and an order-independent digest of the values
(no per-record detail), so checks compare those; it has no headers, seek, offsets-for-times or
group-admin commands, and those features are SKIPped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .common import CheckSet, Ctx, Fail, NotYet, expect, wait_until

CLIENT = "java"

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = Path(os.environ.get("PYKBROKER_TOOLS_DIR", REPO_ROOT / ".tools"))
SOURCES = REPO_ROOT / "tests" / "java"
SETUP = REPO_ROOT / "tests" / "tools" / "setup_java_client.sh"
JARS = ("kafka-clients.jar", "slf4j-api.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar")
JVM_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")
WATCHDOG_GRACE_S = 4  # KafkaCheck halts itself 3 s after --timeout-ms


@dataclass(frozen=True)
class Build:
    """KafkaCheck compiled against one kafka-clients version: a client column of its own."""

    version: str                       # kafka-clients version
    setup: Path                        # fetches the jars, compiles KafkaCheck (idempotent)
    classes: Path                      # where the setup puts KafkaCheck.class
    lib_dir: Path | None = None        # the jars, JARS in one folder (3.9.1 from the wheel) ...
    classpath_file: Path | None = None  # ... or Maven's resolved classpath (4.x)
    download: str = ""

    def libs(self) -> list[str] | None:
        """The jars' classpath entries; None while any is missing."""
        if self.lib_dir is not None:
            return [str(self.lib_dir / "*")] if all((self.lib_dir / j).is_file() for j in JARS) else None
        assert self.classpath_file is not None
        entries = self.classpath_file.read_text().split() if self.classpath_file.is_file() else []
        entries = [e for line in entries for e in line.split(os.pathsep)]
        return entries if entries and all(Path(e).is_file() for e in entries) else None


KAFKA_4X = TOOLS_DIR / "kafka-clients-4.4.0"  # tests/tools/setup_kafka_messages.sh's Maven cache
BUILDS = {
    "java": Build("3.9.1", SETUP, TOOLS_DIR / "java-classes", lib_dir=TOOLS_DIR / "java-lib", download="~92 MB"),
    "java-4": Build("4.4.0", SETUP.with_name("setup_java_client_4x.sh"), KAFKA_4X / "java-classes",
                    classpath_file=KAFKA_4X / "classpath.txt", download="from Maven Central, needs mvn"),
}


def _built(build: Build = BUILDS[CLIENT]) -> bool:
    stamp = build.classes / "KafkaCheck.class"
    if not stamp.is_file() or build.libs() is None:
        return False
    return all(src.stat().st_mtime <= stamp.stat().st_mtime for src in SOURCES.rglob("*.java"))


def _missing_tools() -> str | None:
    missing = [t for t in ("java", "javac") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH (install a JDK >= 11)"
    if not (SOURCES / "KafkaCheck.java").is_file() or not SETUP.is_file():
        return f"KafkaCheck sources not found under {REPO_ROOT} (run from a pykbroker checkout)"
    return None


def available(build: Build = BUILDS[CLIENT]) -> str | None:
    reason = _missing_tools()
    if reason:
        return reason
    if not _built(build):
        return (f"KafkaCheck not built: run {build.setup.relative_to(REPO_ROOT)} "
                f"(fetches kafka-clients {build.version}, {build.download})")
    return None


def prepare(timeout_s: float = 600, build: Build = BUILDS[CLIENT]) -> str | None:
    """Builds KafkaCheck when java/javac exist but it is not built yet (once, in the runner)."""
    if _missing_tools() or _built(build):
        return None
    env = dict(os.environ, PYKBROKER_TOOLS_DIR=str(TOOLS_DIR))
    try:
        proc = subprocess.run(["bash", str(build.setup)], capture_output=True, text=True, timeout=timeout_s, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"{build.setup.name} did not finish within {timeout_s} s"
    if proc.returncode == 3:  # a tool it needs (mvn) is missing: available() says so
        return None
    if proc.returncode != 0 or not _built(build):
        return f"{build.setup.name} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-300:]}"
    return None


def version(build: Build = BUILDS[CLIENT]) -> str:
    return f"kafka-clients {build.version} (KafkaCheck)"


def kafkacheck(ctx: Ctx, *args: object, check: bool = True, cap: float | None = None) -> dict:
    """Runs `KafkaCheck args... --bootstrap <broker>` within the check's time; its JSON result."""
    label = " ".join(map(str, args[:2])) if args[0] == "admin" else str(args[0])
    budget = ctx.remaining(cap)
    timeout_ms = max(1000, int((budget - WATCHDOG_GRACE_S) * 1000))
    build = BUILDS[ctx.client]  # the column this check runs in picks the kafka-clients build
    classpath = os.pathsep.join([str(build.classes), *(build.libs() or ())])
    cmd = ["java", *JVM_OPTS, "-cp", classpath, "KafkaCheck", *map(str, args),
           "--bootstrap", ctx.bootstrap, "--timeout-ms", str(timeout_ms)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget + 2, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, KAFKACHECK_LOG=os.environ.get("KAFKACHECK_LOG", "error")))
    except subprocess.TimeoutExpired:
        raise Fail(f"KafkaCheck {label} did not exit in time") from None
    result = None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            break
    if result is None:
        raise Fail(f"KafkaCheck {label} printed no result (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    if check and not result.get("ok"):
        raise Fail(f"KafkaCheck {label}: {result.get('error', '?')}"[:500])
    return result


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The Java client's partition for a key: toPositive(murmur2(key)) % partitions (Kafka's Utils.murmur2)."""
    m, r = 0x5BD1E995, 24
    length = len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = key[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def _setup_driver():
    """confluent-kafka's admin for setup and cleanup when importable: a JVM start saved per topic."""
    try:
        from .confluent import ConfluentDriver, available as confluent_missing
    except ImportError:
        return None
    return None if confluent_missing() else ConfluentDriver()


def _create(ctx: Ctx, partitions: int = 1, *, with_java: bool = False) -> str:
    """A fresh topic for a check; created by the Java admin only where the admin is under test."""
    topic = ctx.topic()
    driver = None if with_java else _setup_driver()
    if driver is None:
        kafkacheck(ctx, "admin", "create-topic", topic, "--partitions", partitions, cap=30)
    else:
        try:
            driver.create_topic(ctx, topic, partitions)
        except Exception as e:
            raise Fail(f"setup: creating {topic} with confluent-kafka failed: {e}") from e
    return topic


def _ranges(result: dict) -> dict[str, tuple[int, int, int]]:
    return {p: (v["first"], v["last"], v["count"]) for p, v in (result.get("partitions") or {}).items()}


def _same_values(produced: dict, consumed: dict) -> None:
    expect(consumed["count"] == produced["count"], f"consumed {consumed['count']} records, produced {produced['count']}")
    expect(consumed["value_bytes"] == produced["value_bytes"] and consumed["value_crc_sum"] == produced["value_crc_sum"],
           "consumed values differ from the produced ones (digest mismatch)")


checks = CheckSet(CLIENT)
checks.not_supported("KafkaCheck has no option to send record headers", "headers")
checks.not_supported("KafkaCheck has no seek command", "seek-offset")
checks.not_supported("KafkaCheck has no offsets-for-times command", "offsets-for-times")
checks.not_supported("KafkaCheck has no group listing command", "group-list-describe")
checks.not_supported("KafkaCheck creates topics without topic configs (no cleanup.policy=compact)", "compaction")
checks.not_supported("KafkaCheck does not report its consumer's fetch session (the Java 4.4 consumer's "
                     "incremental fetches are checked in tests/integration/clients/test_fetch_sessions_clients.py)",
                     "fetch-sessions")


def _describe_when_known(ctx: Ctx, topic: str) -> dict:
    """describe-topic, retried while the broker answers UnknownTopicOrPartition (see common.NotYet)."""
    def describe() -> dict:
        result = kafkacheck(ctx, "admin", "describe-topic", topic, check=False, cap=20)
        if not result.get("ok") and "UnknownTopicOrPartition" in str(result.get("error")):
            raise NotYet(f"describe-topic {topic}: {result.get('error')}")
        if not result.get("ok"):
            raise Fail(f"KafkaCheck admin describe-topic: {result.get('error', '?')}"[:500])
        return result
    return wait_until(ctx, describe, f"{topic} to be described", cap=30)


@checks.feature("metadata")
def metadata(ctx: Ctx) -> None:
    topic = _create(ctx, 2, with_java=True)
    wait_until(ctx, lambda: topic in kafkacheck(ctx, "admin", "list-topics", cap=20)["topics"],
               f"{topic} in the topic list", cap=30)
    cluster = kafkacheck(ctx, "admin", "describe-cluster", cap=20)
    nodes = cluster.get("nodes") or []
    expect(nodes, "describe-cluster returned no brokers")
    described = kafkacheck(ctx, "admin", "describe-topic", topic, cap=20)
    expect(described["partition_count"] == 2, f"described {described['partition_count']} partitions, created 2")
    ctx.note(f"{len(nodes)} broker(s): " + ", ".join(f"{n['id']}@{n['host']}:{n['port']}" for n in nodes))


@checks.feature("admin-topics")
def admin_topics(ctx: Ctx) -> None:
    topic = _create(ctx, 3, with_java=True)
    described = _describe_when_known(ctx, topic)
    expect(described["partition_count"] == 3, f"described {described['partition_count']} partitions, created 3")
    expect(all(p["leader"] is not None for p in described["partitions"]), "a partition has no leader")
    kafkacheck(ctx, "admin", "delete-topic", topic, cap=20)
    ctx.topics.remove(topic)
    wait_until(ctx, lambda: topic not in kafkacheck(ctx, "admin", "list-topics", cap=20)["topics"],
               f"{topic} to leave the topic list", cap=30)


def _round_trip(ctx: Ctx, count: int, *produce_args: object, partitions: int = 1) -> tuple[dict, dict]:
    topic = _create(ctx, partitions)
    produced = kafkacheck(ctx, "produce", "--topic", topic, "--count", count, *produce_args)
    expect(produced["acked"] == count and produced["failed"] == 0,
           f"{produced['acked']} of {count} acknowledged, {produced['failed']} failed")
    consumed = kafkacheck(ctx, "consume", "--topic", topic, "--count", count)
    _same_values(produced, consumed)
    return produced, consumed


def _acks(acks: str) -> None:
    @checks.feature(f"produce-acks-{acks}")
    def produce_acks(ctx: Ctx) -> None:
        # The idempotent producer (the 3.x default) requires acks=all: turn it off to test 0 and 1.
        produced, consumed = _round_trip(ctx, 100, "--acks", acks, "--idempotence", str(acks == "all").lower())
        expect(_ranges(consumed) == {"0": (0, 99, 100)}, f"consumed offsets {_ranges(consumed)}, want 0..99")
        if acks != "0":
            expect(_ranges(produced) == {"0": (0, 99, 100)}, f"acknowledged offsets {_ranges(produced)}, want 0..99")


def _compression(codec: str) -> None:
    @checks.feature(f"compression-{codec}")
    def compression(ctx: Ctx) -> None:
        _, consumed = _round_trip(ctx, 1000, "--compression", codec, "--value-size", 200)
        expect(_ranges(consumed) == {"0": (0, 999, 1000)}, f"consumed offsets {_ranges(consumed)}, want 0..999")


for _a in ("0", "1", "all"):
    _acks(_a)
for _c in ("none", "gzip", "snappy", "lz4", "zstd"):
    _compression(_c)


@checks.feature("large-message")
def large_message(ctx: Ctx) -> None:
    _round_trip(ctx, 1, "--value-size", 900 * 1024)


@checks.feature("ordering-5000")
def ordering(ctx: Ctx) -> None:
    produced, consumed = _round_trip(ctx, 5000, "--partition", 0, "--no-keys")
    want = {"0": (0, 4999, 5000)}
    expect(_ranges(produced) == want, f"acknowledged offsets {_ranges(produced)}, want 0..4999")
    expect(_ranges(consumed) == want, f"consumed offsets {_ranges(consumed)}, want 0..4999")
    ctx.note("order checked as contiguous offsets 0..4999 and equal value digests")


@checks.feature("keyed-partitioning")
def keyed(ctx: Ctx) -> None:
    keys = [b"user-%d" % i for i in range(200)]
    want: dict[str, int] = {}
    for key in keys:
        p = str(murmur2_partition(key, 4))
        want[p] = want.get(p, 0) + 1
    produced, consumed = _round_trip(ctx, 200, "--key-prefix", "user-", partitions=4)
    for name, result in (("acknowledged", produced), ("consumed", consumed)):
        counts = {p: v[2] for p, v in _ranges(result).items()}
        expect(counts == want, f"{name} per-partition counts {counts}, murmur2 says {want}")
    ctx.note(f"per-partition counts {dict(sorted(want.items()))}")


@checks.feature("consume-assign")
def consume_assign(ctx: Ctx) -> None:
    topic = _create(ctx, 2)
    for partition, count in ((0, 30), (1, 20)):
        kafkacheck(ctx, "produce", "--topic", topic, "--count", count, "--partition", partition)
    consumed = kafkacheck(ctx, "consume", "--topic", topic, "--count", 50)
    expect(_ranges(consumed) == {"0": (0, 29, 30), "1": (0, 19, 20)},
           f"consumed {_ranges(consumed)}, want partition 0: 0..29, partition 1: 0..19")


@checks.feature("idempotent-producer")
def idempotent(ctx: Ctx) -> None:
    produced, consumed = _round_trip(ctx, 300, "--idempotence", "true", "--acks", "all", "--partition", 0)
    expect(_ranges(produced) == {"0": (0, 299, 300)}, f"acknowledged offsets {_ranges(produced)}, want 0..299")
    expect(_ranges(consumed) == {"0": (0, 299, 300)}, f"consumed offsets {_ranges(consumed)}, want 0..299")


#: Kafka 4 clients use transactions v2 (KIP-890) when the broker finalizes transaction.version 2.
TRANSACTIONS_V2_CLIENTS = frozenset({"java-4"})


@checks.feature("transactions")
def transactions(ctx: Ctx) -> None:
    """commit 10, abort 10, commit 10 on one partition; each transaction's marker takes an offset.
    The coordinator's epoch tells the protocol used: v2 bumps it on each of the three EndTxn, v1 keeps it."""
    topic = _create(ctx, 1)
    done = kafkacheck(ctx, "txn", "--topic", topic, "--transactional-id", ctx.transactional_id(),
                      "--plan", "commit:10,abort:10,commit:10")
    expect((done.get("commits"), done.get("aborts")) == (2, 1), f"transactions ended as {done}")
    features = kafkacheck(ctx, "admin", "describe-features", cap=15)
    v2 = ctx.client in TRANSACTIONS_V2_CLIENTS and (features.get("finalized") or {}).get(
        "transaction.version", [0, 0])[1] >= 2
    bumps = done.get("after_epoch", -1) - done.get("init_epoch", 0)
    expect(done.get("after_producer_id") == done.get("init_producer_id") and bumps == (3 if v2 else 0),
           f"the producer epoch rose by {bumps} over three transactions, want {3 if v2 else 0} "
           f"(transactions v{2 if v2 else 1}): {done}")
    ctx.note(f"transactions v{2 if v2 else 1}")
    committed = kafkacheck(ctx, "consume", "--topic", topic, "--count", 20, "--prop", "isolation.level=read_committed")
    expect(_ranges(committed) == {"0": (0, 31, 20)},
           f"read_committed got {_ranges(committed)}, want 20 records at 0..9 and 22..31")
    everything = kafkacheck(ctx, "consume", "--topic", topic, "--count", 30)
    expect(_ranges(everything) == {"0": (0, 31, 30)}, f"read_uncommitted got {_ranges(everything)}, want 30 records")


@checks.feature("group-commit-resume")
def group_commit_resume(ctx: Ctx) -> None:
    topic, group = _create(ctx, 1), ctx.group()
    kafkacheck(ctx, "produce", "--topic", topic, "--count", 100, "--partition", 0)
    member = ("--group", group, "--from-beginning", "--prop", "session.timeout.ms=6000")
    first = kafkacheck(ctx, "consume", "--topic", topic, "--count", 60, *member, cap=25)
    expect(first.get("committed"), "the first member did not commit")
    expect(_ranges(first) == {"0": (0, 59, 60)}, f"the first member read {_ranges(first)}, want 0..59")
    second = kafkacheck(ctx, "consume", "--topic", topic, "--count", 40, *member, cap=25)
    expect(_ranges(second) == {"0": (60, 99, 40)}, f"the second member read {_ranges(second)}, want 60..99")


def cleanup(ctx: Ctx) -> None:
    driver = _setup_driver()
    if driver is not None:
        driver.delete_topics(ctx, ctx.topics)
        return
    for topic in ctx.topics:
        kafkacheck(ctx, "admin", "delete-topic", topic, check=False, cap=10)


from . import java_admin  # noqa: E402,F401  (registers the admin-surface and client-quotas checks)
