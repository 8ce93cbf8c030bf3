"""franz-go (kgo + kadm, the strictest Go client about protocol details), driven through the project's
franzcheck program (tests/go/franzcheck, built by tests/tools/setup_franz_go.sh into .tools/bin/).

Every scenario feature runs: each driver step is one franzcheck run (a Go binary starts in milliseconds),
with its parameters as JSON on stdin and its result as one JSON line on stdout. Group features use
kgo's classic group protocol with the cooperative-sticky balancer; admin steps use kadm, and a topic
created with configs is checked against what DescribeConfigs reports for it afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from .common import CheckSet, Ctx, Fail, expect
from .java import murmur2_partition
from .scenarios import Driver, Rec, register

CLIENT = "franz-go"
VERSION = "v1.22.3, kadm v1.20.0 (franzcheck)"

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = Path(os.environ.get("PYKBROKER_TOOLS_DIR", REPO_ROOT / ".tools"))
BINARY = TOOLS_DIR / "bin" / "franzcheck"
SOURCES = REPO_ROOT / "tests" / "go" / "franzcheck"
SETUP = REPO_ROOT / "tests" / "tools" / "setup_franz_go.sh"
EXIT_GRACE_S = 3  # franzcheck stops itself at timeout_ms; this much more before it is killed


def _built() -> bool:
    if not BINARY.is_file():
        return False
    built = BINARY.stat().st_mtime
    return all(f.stat().st_mtime <= built for f in SOURCES.iterdir() if f.suffix in (".go", ".mod", ".sum"))


def _go_missing() -> str | None:
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").is_file():
        return "go not on PATH (install Go >= the version in tests/go/franzcheck/go.mod)"
    return None


def available() -> str | None:
    if _built():
        return None
    return _go_missing() or f"franzcheck not built: run {SETUP.relative_to(REPO_ROOT)}"


def prepare(timeout_s: float = 600) -> str | None:
    """Builds franzcheck when go exists but the binary is missing or stale (once, in the runner)."""
    if _go_missing() or _built():
        return None
    try:
        proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, env=dict(os.environ, PYKBROKER_TOOLS_DIR=str(TOOLS_DIR)))
    except subprocess.TimeoutExpired:
        return f"{SETUP.name} did not finish within {timeout_s} s"
    if proc.returncode != 0 or not _built():
        return f"{SETUP.name} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-300:]}"
    return None


def version() -> str:
    return VERSION


def franzcheck(ctx: Ctx, command: str, cap: float | None = None, **params: object) -> dict:
    """Runs `franzcheck command` with `params` within the check's time; its result, Fail unless ok."""
    budget = ctx.remaining(cap)
    params.update(bootstrap=ctx.bootstrap, timeout_ms=max(500, int((budget - EXIT_GRACE_S) * 1000)))
    try:
        proc = subprocess.run([str(BINARY), command], input=json.dumps(params), capture_output=True, text=True,
                              timeout=budget + 1)
    except subprocess.TimeoutExpired:
        raise Fail(f"franzcheck {command} did not exit in time") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise Fail(f"franzcheck {command} printed no result (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    result = json.loads(lines[-1])
    if not result.get("ok"):
        logs = proc.stderr.strip()[-300:]
        raise Fail(f"franzcheck {command}: {result.get('error', '?')}"[:500] + (f" | log: {logs}" if logs else ""))
    return result


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _to_json(rec: Rec) -> dict:
    return {"key": _b64(rec.key), "value": _b64(rec.value), "timestamp": rec.timestamp, "partition": rec.partition,
            "headers": [{"key": k, "value": _b64(v)} for k, v in rec.headers]}


def _from_json(raw: dict) -> Rec:
    return Rec(value=_bytes(raw["value"]), key=_bytes(raw["key"]), timestamp=raw["timestamp"],
               headers=[(h["key"], _bytes(h["value"]) or b"") for h in raw["headers"]],
               partition=raw["partition"], offset=raw["offset"])


class FranzGoDriver(Driver):
    """Each step one franzcheck run; records keep franz-go's fetch order (no re-sorting)."""

    name = CLIENT

    def create_topic(self, ctx: Ctx, topic: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        created = franzcheck(ctx, "create-topic", 20, topic=topic, partitions=partitions, configs=configs or {})
        expect(created["partitions"] == partitions, f"CreateTopics answered {created['partitions']} partitions")
        for name, value in (configs or {}).items():
            described = created["configs"].get(name) or {}
            expect(described.get("value") == value, f"DescribeConfigs of {topic}: {name}={described}, set {value!r}")

    def delete_topics(self, ctx: Ctx, topics: Sequence[str]) -> None:
        if topics:
            franzcheck(ctx, "delete-topics", 20, topics=list(topics))

    def metadata(self, ctx: Ctx) -> tuple[set[str], list[tuple[int, str, int]]]:
        md = franzcheck(ctx, "metadata", 20)
        return set(md["topics"]), [(b["id"], b["host"], b["port"]) for b in md["brokers"]]

    def partition_count(self, ctx: Ctx, topic: str) -> int:
        described = franzcheck(ctx, "describe-topic", 20, topic=topic)
        expect(all(leader >= 0 for leader in described["leaders"].values()), f"a partition has no leader: {described}")
        return described["partitions"]

    def produce(self, ctx: Ctx, topic: str, records: Sequence[Rec], *, acks: object = "all",
                compression: str = "none", idempotent: bool = False) -> list[tuple[int, int]]:
        out = franzcheck(ctx, "produce", topic=topic, records=[_to_json(r) for r in records], acks=str(acks),
                         compression=compression, idempotent=idempotent)
        return [(p, o) for p, o in out["acked"]]

    def consume(self, ctx: Ctx, topic: str, starts: dict[int, int | None], count: int, *,
                read_committed: bool = False) -> list[Rec]:
        out = franzcheck(ctx, "consume", topic=topic, starts={str(p): o for p, o in starts.items()}, count=count,
                         read_committed=read_committed)
        return [_from_json(r) for r in out["records"]]

    def transactional_produce(self, ctx: Ctx, topic: str, transactional_id: str,
                              transactions: Sequence[tuple[Sequence[Rec], bool]]) -> None:
        franzcheck(ctx, "transactional-produce", topic=topic, transactional_id=transactional_id,
                   transactions=[{"records": [_to_json(r) for r in recs], "commit": commit}
                                 for recs, commit in transactions])

    def end_offsets(self, ctx: Ctx, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        ends = franzcheck(ctx, "end-offsets", 20, topic=topic)["offsets"]
        return {p: ends[str(p)] for p in partitions}

    def offset_for_time(self, ctx: Ctx, topic: str, partition: int, ts: int) -> tuple[int, int] | None:
        found = franzcheck(ctx, "offset-for-time", 20, topic=topic, partition=partition, timestamp=ts)
        # kadm answers "none at or after ts" with the end offset and timestamp -1
        return None if found["timestamp"] < 0 else (found["offset"], found["timestamp"])

    def partition_for_key(self, key: bytes, partitions: int) -> int:
        return murmur2_partition(key, partitions)  # kgo's default partitioner hashes keys as Java's does

    def group_consume(self, ctx: Ctx, topic: str, group: str, count: int) -> list[Rec]:
        out = franzcheck(ctx, "group-consume", 25, topic=topic, group=group, count=count)
        got = [_from_json(r) for r in out["records"]]
        if got:
            want = {str(got[-1].partition): got[-1].offset + 1}
            expect(out["committed"] == want, f"OffsetFetch after the commit: {out['committed']}, committed {want}")
        return got

    def group_list_describe(self, ctx: Ctx, topic: str, group: str) -> dict:
        info = franzcheck(ctx, "group-list-describe", 25, topic=topic, group=group)
        expect(info["protocol"] == "cooperative-sticky", f"group protocol {info['protocol']!r}, the member asked for "
                                                         "cooperative-sticky")
        expect(info["assigned_topics"] == [topic], f"assigned topics {info['assigned_topics']}, want [{topic!r}]")
        return info


def cleanup(ctx: Ctx) -> None:
    FranzGoDriver().delete_topics(ctx, ctx.topics)


checks = CheckSet(CLIENT)
register(checks, FranzGoDriver())


# ---------------------------------------------------------------- admin APIs beyond topics, quotas
# franzcheck's admin_surface.go sends franz-go's own kmsg requests and reports what came back.

def _topic(ctx: Ctx) -> str:
    topic = ctx.topic()
    FranzGoDriver().create_topic(ctx, topic, 1)
    return topic


@checks.feature("admin-configs")
def admin_configs(ctx: Ctx) -> None:
    out = franzcheck(ctx, "admin-configs", topic=_topic(ctx))
    expect((out["retention_ms"]["value"], out["retention_ms"]["source"]) == ("604800000", "DEFAULT_CONFIG"),
           f"retention.ms described as {out['retention_ms']}")
    expect(out["altered"] == "ok" and out["retention_ms_after"]["value"] == "7200000",
           f"the altered retention.ms: {out['altered']}, {out['retention_ms_after']}")
    expect(out["undocumented"] == 0, f"{out['undocumented']} topic configs described without documentation")


@checks.feature("admin-partitions")
def admin_partitions(ctx: Ctx) -> None:
    out = franzcheck(ctx, "admin-partitions", topic=_topic(ctx))
    expect(out["assigned"] == "ok", f"partitions assigned to the node: {out['assigned']}")
    expect(out["unknown_broker"] == "INVALID_REPLICA_ASSIGNMENT", f"broker 999: {out['unknown_broker']}")


@checks.feature("admin-log-dirs")
def admin_log_dirs(ctx: Ctx) -> None:
    out = franzcheck(ctx, "admin-log-dirs", topic=_topic(ctx))
    expect((out["move_to_own_dir"], out["move_to_unknown_dir"]) == ("ok", "LOG_DIR_NOT_FOUND"),
           f"moves answered {out['move_to_own_dir']}, {out['move_to_unknown_dir']}")


@checks.feature("admin-replicas")
def admin_replicas(ctx: Ctx) -> None:
    out = franzcheck(ctx, "admin-replicas", topic=_topic(ctx))
    expect(out["election"] == "ELECTION_NOT_NEEDED", f"preferred election: {out['election']}")
    expect((out["reassignments_in_progress"], out["reassign_to_own_node"]) == (0, "ok"), f"reassignments: {out}")


@checks.feature("client-quotas")
def client_quotas(ctx: Ctx) -> None:
    """kmsg's AlterClientQuotas/DescribeClientQuotas: set, describe, remove (the throttled producer
    part is covered by the other clients' checks)."""
    from .quotas import client_id

    out = franzcheck(ctx, "client-quotas", client_id=client_id(ctx), rate=2048.0)
    expect(out["invalid_key"] == "INVALID_REQUEST", f"an unknown quota key: {out['invalid_key']}")
    expect((out["set"], out["described"]) == ("ok", {"producer_byte_rate": 2048.0}), f"set and described: {out}")
    expect((out["removed"], out["after_removal"]) == ("ok", 0), f"removed: {out}")
checks.not_supported("franzcheck has no fetch-session step yet (franz-go uses sessions)", "fetch-sessions")
