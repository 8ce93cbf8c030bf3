"""What ApiVersions advertises is consistent with Kafka's own definitions and with what is served.

Feature levels are checked against Kafka 4.4's Feature and MetadataVersion enums (features.tsv,
written by tests/tools/setup_kafka_messages.sh); handler versions against Kafka 3.9.1's ranges, so
widening the specs to 4.x cannot widen what is served without a listed reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pykbroker.handlers import HANDLERS
from pykbroker.handlers.features import FINALIZED, METADATA_VERSION, SUPPORTED, supported_features
from pykbroker.protocol.messages import API_KEYS, API_VERSION_RANGES

#: Handlers serving versions beyond Kafka 3.9.1's, each because that 4.x version only adds fields the
#: handler ignores or fills (the reason is at each @handles).
RAISED_BEYOND_3_9 = {"PRODUCE": 12, "FETCH": 18, "LIST_OFFSETS": 10, "METADATA": 13, "DESCRIBE_GROUPS": 6, "DELETE_GROUPS": 3,
                     "DESCRIBE_CLUSTER": 2, "CONSUMER_GROUP_DESCRIBE": 1, "CONSUMER_GROUP_HEARTBEAT": 1,
                     "END_TXN": 5, "TXN_OFFSET_COMMIT": 6, "LIST_TRANSACTIONS": 2}
#: Kafka 4.4's topic-id versions (KIP-516, KIP-848), ListOffsets v11 (KIP-1023), ApiVersions v5 (KIP-1242).
RAISED_BEYOND_3_9 |= {"PRODUCE": 13, "LIST_OFFSETS": 11, "OFFSET_COMMIT": 10, "OFFSET_FETCH": 10, "API_VERSIONS": 5}
RAISED_BEYOND_3_9 |= {"DESCRIBE_LOG_DIRS": 5, "ALTER_PARTITION_REASSIGNMENTS": 1}  # issue 12 (log dirs, KIP-860)
#: kraft.version describes the controller quorum's voter records (KIP-853); there is no quorum here.
NOT_TIED_TO_METADATA_VERSION = {"kraft.version"}


def kafka_features(ref: Path) -> dict[str, dict[int, tuple[bool, int]]]:
    """feature -> level -> (production ready, metadata.version level that makes it the default)."""
    out: dict[str, dict[int, tuple[bool, int]]] = {}
    with (ref / "features.tsv").open() as f:
        for r in csv.DictReader(f, delimiter="\t"):
            out.setdefault(r["feature"], {})[int(r["level"])] = (r["production"] == "true",
                                                                 int(r["bootstrap_metadata_level"]))
    return out


def test_supported_levels_are_production_levels_of_kafka_4(kafka4_reference: Path) -> None:
    kafka = kafka_features(kafka4_reference)
    for name, (low, high) in SUPPORTED.items():
        assert min(kafka[name]) == low, name
        assert all(kafka[name][level][0] for level in range(low, high + 1)), name


def test_finalized_levels_are_kafkas_defaults_at_the_metadata_version_chosen(kafka4_reference: Path) -> None:
    """A Kafka 4.4 cluster formatted at metadata.version METADATA_VERSION finalizes exactly these levels."""
    kafka = kafka_features(kafka4_reference)
    assert FINALIZED["metadata.version"] == METADATA_VERSION
    for name, levels in kafka.items():
        if name == "metadata.version" or name in NOT_TIED_TO_METADATA_VERSION:
            continue
        default = max(level for level, (_, bootstrap) in levels.items() if bootstrap <= METADATA_VERSION)
        assert FINALIZED.get(name, 0) == default, name


def test_group_version_1_needs_the_consumer_group_protocol_served() -> None:
    assert FINALIZED["group.version"] == 1
    assert HANDLERS[API_KEYS["CONSUMER_GROUP_HEARTBEAT"]].min_version == 0


def test_features_with_minimum_0_are_left_out_before_v4() -> None:
    assert {f["name"] for f in supported_features(3)} == {n for n, (lo, hi) in SUPPORTED.items() if lo > 0 < hi}
    assert {f["name"] for f in supported_features(4)} == {n for n, (_, hi) in SUPPORTED.items() if hi > 0}


def api_maxima(ref: Path) -> dict[int, int]:
    with (ref / "api-keys.tsv").open() as f:
        return {int(r["api_key"]): int(r["latest"]) for r in csv.DictReader(f, delimiter="\t")}


def test_served_versions_stay_within_3_9_unless_listed(kafka_reference: Path) -> None:
    kafka_3_9 = api_maxima(kafka_reference)
    beyond = {name: HANDLERS[key].max_version for name, key in API_KEYS.items()
              if key in HANDLERS and HANDLERS[key].max_version > kafka_3_9.get(key, -1)}
    assert beyond == RAISED_BEYOND_3_9
    for key, h in HANDLERS.items():
        assert API_VERSION_RANGES[key][0] <= h.min_version <= h.max_version <= API_VERSION_RANGES[key][1]


def test_handlers_read_only_fields_their_request_has() -> None:
    """4.x renamed some fields at versions 3.9 shares (TxnOffsetCommit's generation_id): a handler
    reading a name its request no longer has would silently get the default."""
    import inspect
    import re

    from pykbroker.protocol.messages import spec_for
    from pykbroker.protocol.schema import vrange
    checked = 0
    for key, h in HANDLERS.items():
        spec = spec_for(key, "request")
        top = {f["name"] for f in spec["fields"]
               if any(v in vrange(f["versions"]) for v in range(h.min_version, h.max_version + 1))}
        source = inspect.getsource(h.fn)
        for name in re.findall(r'\breq\.get\("(\w+)"', source) + re.findall(r"\breq\.(?!get\b)(\w+)", source):
            assert name in top, f"{spec['name']} handler reads {name!r}, not a field at v{h.min_version}-{h.max_version}"
            checked += 1
    assert checked > 40
