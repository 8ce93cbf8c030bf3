"""kcat (librdkafka's command-line client), when it is on PATH.

kcat has no admin commands: topics are created and deleted with confluent-kafka's AdminClient (same
librdkafka underneath); offsets-for-times records are produced by confluent-kafka too, since kcat
cannot set a record's timestamp. Everything under test (produce, consume, query) is kcat itself.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import zlib

from .common import T0_MS, CheckSet, Ctx, Fail, expect, first_mismatch, value_for, wait_until

CLIENT = "kcat"


def available() -> str | None:
    if shutil.which("kcat") is None:
        return "kcat not on PATH (Debian: apt-get install kcat; tests/tools/setup_kcat.sh)"
    try:
        import confluent_kafka  # noqa: F401  (topic setup)
    except ImportError:
        return "kcat checks create their topics with confluent-kafka, which is not importable"
    return None


def version() -> str:
    try:
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(r"Version (\S+).*?librdkafka (\S+)", out.stdout + out.stderr)
    return f"{m.group(1)} (librdkafka {m.group(2)})" if m else "?"


def kcat(ctx: Ctx, *args: object, input: bytes | None = None, cap: float | None = None) -> str:
    budget = ctx.remaining(cap)
    cmd = ["kcat", "-b", ctx.bootstrap, "-m", str(max(1, min(15, int(budget) - 1))), *map(str, args)]
    try:
        proc = subprocess.run(cmd, input=input or b"", capture_output=True, timeout=budget)
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode(errors="replace").strip()
        raise Fail(f"kcat {' '.join(map(str, args[:2]))} did not finish in time {err[-200:]}".rstrip()) from None
    if proc.returncode != 0:
        raise Fail(f"kcat {' '.join(map(str, args[:2]))} exited {proc.returncode}: {_first_error(proc.stderr)}")
    return proc.stdout.decode(errors="replace")


def _first_error(stderr: bytes) -> str:
    """kcat's first '% ERROR' line (or its last line): the cause, without the repeats."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("% ERROR")]
    text = (errors or lines or ["(no output)"])[0 if errors else -1][:300]
    causes = [line.split("]: ", 1)[-1] for line in lines if "|FAIL|" in line or "|ERROR|" in line]
    if causes and causes[0][:80] not in text:
        text += f" [first client log error: {causes[0][:200]}]"
    return text


def _driver():
    from .confluent import ConfluentDriver
    return ConfluentDriver()


def _create(ctx: Ctx, partitions: int = 1) -> str:
    topic = ctx.topic()
    try:
        _driver().create_topic(ctx, topic, partitions)
    except Exception as e:
        raise Fail(f"setup: creating {topic} with confluent-kafka failed: {e}") from e
    return topic


def _produce(ctx: Ctx, topic: str, lines: list[bytes], *args: object) -> None:
    kcat(ctx, "-P", "-t", topic, *args, input=b"".join(line + b"\n" for line in lines))


def _consume(ctx: Ctx, topic: str, *args: object) -> list[dict]:
    out = kcat(ctx, "-C", "-t", topic, "-e", "-J", "-q", *args)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _expect_values(got: list[dict], want: list[bytes], first_offset: int = 0) -> None:
    expect(len(got) == len(want), f"consumed {len(got)} records, produced {len(want)}")
    diff = first_mismatch([m["payload"] for m in got], [w.decode() for w in want])
    expect(not diff, f"values differ: {diff}")
    diff = first_mismatch([m["offset"] for m in got], range(first_offset, first_offset + len(want)))
    expect(not diff, f"offsets differ: {diff}")


def _values(n: int, size: int = 40) -> list[bytes]:
    return [value_for(i, size) for i in range(n)]


checks = CheckSet(CLIENT)
checks.not_supported("kcat has no admin commands", "admin-topics", "admin-configs", "admin-partitions",
                     "admin-log-dirs", "admin-replicas", "client-quotas")
checks.not_supported("kcat has no admin commands: it cannot create a cleanup.policy=compact topic", "compaction")
checks.not_supported("kcat cannot list or describe consumer groups", "group-list-describe")
checks.not_supported("kcat -P runs its input as one transaction and commits it: it cannot abort one on purpose", "transactions")


@checks.feature("metadata")
def metadata(ctx: Ctx) -> None:
    topic = _create(ctx, 2)

    def described() -> tuple[dict, dict] | None:
        # Apache Kafka's broker may learn of a topic a moment after CreateTopics answered (see common.NotYet):
        # until then kcat -L lists it with an error and no partitions.
        md = json.loads(kcat(ctx, "-L", "-J", "-t", topic, cap=20))
        t = next((t for t in md.get("topics", []) if t["topic"] == topic), None)
        return (md, t) if t is not None and t.get("partitions") and not t.get("error") else None

    md, t = wait_until(ctx, described, f"{topic} with partitions in kcat -L", cap=30)
    expect(md.get("brokers"), "kcat -L shows no brokers")
    expect(len(t["partitions"]) == 2, f"kcat -L shows {len(t['partitions'])} partitions, created 2")
    ctx.note(f"{len(md['brokers'])} broker(s): " + ", ".join(f"{b['id']}@{b['name']}" for b in md["brokers"]))


def _acks(acks: str) -> None:
    @checks.feature(f"produce-acks-{acks}")
    def produce_acks(ctx: Ctx) -> None:
        topic = _create(ctx)
        values = _values(100)
        _produce(ctx, topic, values, "-p", 0, "-X", f"acks={-1 if acks == 'all' else acks}")
        _expect_values(_consume(ctx, topic, "-o", "beginning"), values)


def _compression(codec: str) -> None:
    @checks.feature(f"compression-{codec}")
    def compression(ctx: Ctx) -> None:
        topic = _create(ctx)
        values = _values(1000, 200)
        _produce(ctx, topic, values, "-p", 0, "-z", codec, "-X", "linger.ms=20")
        _expect_values(_consume(ctx, topic, "-o", "beginning"), values)


for _a in ("0", "1", "all"):
    _acks(_a)
for _c in ("none", "gzip", "snappy", "lz4", "zstd"):
    _compression(_c)


@checks.feature("headers")
def headers(ctx: Ctx) -> None:
    topic = _create(ctx)
    values = _values(5)
    # kcat -H applies the same headers to every record it produces in one run.
    _produce(ctx, topic, values, "-p", 0, "-H", "trace=t-1", "-H", "trace=second", "-H", "empty=",
             "-H", "ünïcode=x")
    got = _consume(ctx, topic, "-o", "beginning")
    _expect_values(got, values)
    want = ["trace", "t-1", "trace", "second", "empty", "", "ünïcode", "x"]
    for m in got:
        expect(m.get("headers") == want, f"offset {m['offset']}: headers {m.get('headers')}, want {want}")


@checks.feature("large-message")
def large_message(ctx: Ctx) -> None:
    topic = _create(ctx)
    big = random.Random(7).randbytes(900 * 1024 // 2).hex().encode()  # one 900 KiB line
    values = [b"before", big, b"after"]
    _produce(ctx, topic, values, "-p", 0)
    got = _consume(ctx, topic, "-o", "beginning")
    expect(len(got) == 3, f"consumed {len(got)} records, produced 3")
    expect(len(got[1]["payload"]) == len(big), f"large value came back with {len(got[1]['payload'])} bytes")
    _expect_values(got, values)


@checks.feature("ordering-5000")
def ordering(ctx: Ctx) -> None:
    topic = _create(ctx)
    values = _values(5000)
    _produce(ctx, topic, values, "-p", 0, "-X", "linger.ms=20")
    _expect_values(_consume(ctx, topic, "-o", "beginning"), values)


@checks.feature("keyed-partitioning")
def keyed(ctx: Ctx) -> None:
    topic = _create(ctx, 4)
    wait_until(ctx, lambda: _driver().partition_count(ctx, topic) == 4, f"{topic} with 4 partitions")
    keys = [b"user-%d" % i for i in range(200)]
    # librdkafka's default partitioner (consistent_random) for a keyed record: CRC-32(key) % partitions.
    want = {k.decode(): zlib.crc32(k) % 4 for k in keys}
    _produce(ctx, topic, [k + b"\t" + b"v" + k for k in keys], "-K", "\t")
    got = _consume(ctx, topic, "-o", "beginning")
    expect(len(got) == len(keys), f"consumed {len(got)} records, produced {len(keys)}")
    for m in got:
        expect(m["partition"] == want.get(m["key"]),
               f"key {m['key']!r} read from partition {m['partition']}, the partitioner says {want.get(m['key'])}")
    used = sorted({m["partition"] for m in got})
    expect(len(used) >= 3, f"200 keys landed on partitions {used} only")


@checks.feature("consume-assign")
def consume_assign(ctx: Ctx) -> None:
    topic = _create(ctx, 2)
    values = _values(50)
    _produce(ctx, topic, values[:30], "-p", 0)
    _produce(ctx, topic, values[30:], "-p", 1)
    got = _consume(ctx, topic, "-o", "beginning")
    _expect_values([m for m in got if m["partition"] == 0], values[:30])
    _expect_values([m for m in got if m["partition"] == 1], values[30:])
    # -Q with timestamp -1 asks for the end offset (ListOffsets LATEST)
    ends = _query(ctx, topic, {0: -1, 1: -1})
    expect(ends == {0: 30, 1: 20}, f"end offsets {ends}, want {{0: 30, 1: 20}}")


def _query(ctx: Ctx, topic: str, times: dict[int, int]) -> dict[int, int]:
    args = []
    for partition, ts in times.items():
        args += ["-t", f"{topic}:{partition}:{ts}"]
    out = kcat(ctx, "-Q", *args, cap=20)
    found = {int(p): int(o) for p, o in re.findall(r"\[(\d+)\]\s+offset\s+(-?\d+)", out)}
    expect(set(found) == set(times), f"kcat -Q answered {out.strip()!r}")
    return found


@checks.feature("seek-offset")
def seek(ctx: Ctx) -> None:
    topic = _create(ctx)
    values = _values(100)
    _produce(ctx, topic, values, "-p", 0)
    _expect_values(_consume(ctx, topic, "-p", 0, "-o", 37, "-c", 10), values[37:47], 37)
    _expect_values(_consume(ctx, topic, "-p", 0, "-o", 99), values[99:], 99)


@checks.feature("offsets-for-times")
def offsets_for_times(ctx: Ctx) -> None:
    from .scenarios import Rec
    topic = _create(ctx)
    recs = [Rec(value=value_for(i), timestamp=T0_MS + i * 1000, partition=0) for i in range(30)]
    try:
        _driver().produce(ctx, topic, recs)
    except Exception as e:
        raise Fail(f"setup: producing timestamped records with confluent-kafka failed: {e}") from e
    for ts, want in ((T0_MS + 10_500, 11), (T0_MS + 5_000, 5), (T0_MS - 60_000, 0), (T0_MS + 60_000, -1)):
        found = _query(ctx, topic, {0: ts})[0]
        expect(found == want, f"kcat -Q for T0{ts - T0_MS:+d} ms: offset {found}, want {want}")
    [m] = _consume(ctx, topic, "-p", 0, "-o", f"s@{T0_MS + 10_500}", "-c", 1)
    expect((m["offset"], m["ts"]) == (11, T0_MS + 11_000),
           f"-o s@T0+10500 read offset {m['offset']} ts {m['ts']}, want 11 at T0+11000")


@checks.feature("idempotent-producer")
def idempotent(ctx: Ctx) -> None:
    topic = _create(ctx)
    values = _values(300)
    _produce(ctx, topic, values, "-p", 0, "-X", "enable.idempotence=true")
    _expect_values(_consume(ctx, topic, "-o", "beginning"), values)


@checks.feature("group-commit-resume")
def group_commit_resume(ctx: Ctx) -> None:
    topic, group = _create(ctx), ctx.group()
    values = _values(100)
    _produce(ctx, topic, values, "-p", 0)
    member = ("-G", group, topic, "-J", "-q", "-e", "-X", "auto.offset.reset=earliest",
              "-X", "session.timeout.ms=6000")
    # -G: a balanced consumer; offsets are auto-committed, and at close for what kcat consumed
    first = [json.loads(x) for x in kcat(ctx, *member, "-c", 60, cap=25).splitlines() if x.startswith("{")]
    _expect_values(first, values[:60])
    second = [json.loads(x) for x in kcat(ctx, *member, "-c", 40, cap=25).splitlines() if x.startswith("{")]
    expect(second, "the second member read nothing")
    expect(second[0]["offset"] == 60, f"the second member started at offset {second[0]['offset']}, committed 60")
    _expect_values(second, values[60:], 60)


def cleanup(ctx: Ctx) -> None:
    if ctx.topics:
        _driver().delete_topics(ctx, ctx.topics)
checks.not_supported("kcat's librdkafka does not implement fetch sessions (KIP-227)", "fetch-sessions")
