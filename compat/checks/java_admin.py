"""The Java client's checks of the admin APIs beyond topics and of client quotas, through KafkaCheck's
AdminSurface subcommands (tests/java/AdminSurface.java); registered on java.py's checks, so java and
java-4 both run them. The facts expected are the ones Apache Kafka 4.4.0 gives."""

from __future__ import annotations

from .common import Ctx, expect
from .java import _create, checks, kafkacheck
from .quotas import QUOTA_BYTES_PER_S, client_id, most_bytes, set_quota


def _facts(ctx: Ctx, *args: object) -> dict:
    return kafkacheck(ctx, "admin", *args, cap=30)


@checks.feature("admin-configs")
def admin_configs(ctx: Ctx) -> None:
    out = _facts(ctx, "describe-configs", _create(ctx))
    retention = out["retention_ms"]
    expect((retention["value"], retention["source"], retention["type"]) == ("604800000", "DEFAULT_CONFIG", "LONG"),
           f"retention.ms described as {retention}")
    expect(out["cleanup_policy"]["synonyms"] >= 1, f"cleanup.policy has no synonyms: {out['cleanup_policy']}")
    expect(out["topic_configs_without_documentation"] == 0 and out["num_partitions"]["documented"],
           "configs described without documentation")


@checks.feature("admin-partitions")
def admin_partitions(ctx: Ctx) -> None:
    out = _facts(ctx, "create-partitions", _create(ctx), "--total", 3)
    expect(out["assigned"] == "ok", f"partitions assigned to the controller node: {out['assigned']}")
    expect(out["unknown_broker"] == "InvalidReplicaAssignmentException", f"broker 999: {out['unknown_broker']}")


@checks.feature("admin-log-dirs")
def admin_log_dirs(ctx: Ctx) -> None:
    out = _facts(ctx, "log-dirs", _create(ctx))
    expect(out["dirs"] >= 1 and out["has_partition"], f"log dirs described as {out}")
    expect((out["move_to_own_dir"], out["move_to_unknown_dir"]) == ("ok", "LogDirNotFoundException"),
           f"moves answered {out['move_to_own_dir']}, {out['move_to_unknown_dir']}")


@checks.feature("admin-replicas")
def admin_replicas(ctx: Ctx) -> None:
    out = _facts(ctx, "replicas", _create(ctx))
    expect(out["election"] == "ElectionNotNeededException", f"preferred election: {out['election']}")
    expect((out["reassignments_in_progress"], out["reassign_to_own_node"]) == (0, "ok"), f"reassignments: {out}")


@checks.feature("client-quotas")
def client_quotas(ctx: Ctx) -> None:
    """The Java admin sets, describes and removes a quota; then a Java producer over a quota (set
    with pykbroker's wire client) must take long enough to stay under the quota's bound."""
    out = _facts(ctx, "client-quotas", "--client-id", client_id(ctx), "--rate", 2048)
    expect(out["invalid_key"] == "InvalidRequestException", f"an unknown quota key: {out['invalid_key']}")
    expect(out["described"] == {"consumer_byte_rate": 2048.0, "producer_byte_rate": 2048.0}, f"described {out}")
    expect(out["after_removal"] == 0, "the removed quota is still described")
    topic, cid = _create(ctx), client_id(ctx)
    set_quota(ctx.bootstrap, cid, "producer_byte_rate", float(QUOTA_BYTES_PER_S))
    count = 2000  # 2 MB: more than a new client may send at once (10 s of quota), so it must wait
    produced = kafkacheck(ctx, "produce", "--topic", topic, "--count", count, "--value-size", 1000,
                          "--prop", f"client.id={cid}", cap=45)
    elapsed = produced["elapsed_ms"] / 1000
    ctx.note(f"{count} KB at a {QUOTA_BYTES_PER_S // 1024} KiB/s quota took {elapsed:.1f} s")
    expect(produced["acked"] * 1000 <= most_bytes(elapsed), f"{count} KB acknowledged in {elapsed:.1f} s: "
           f"over the quota's bound {most_bytes(elapsed):.0f}")
    set_quota(ctx.bootstrap, cid, "producer_byte_rate", None)
