"""Every message at every version: build -> parse gives the value back, compiled and interpreted agree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_strategies import for_struct
from pykbroker.protocol.messages import codec
from pykbroker.protocol.schema import load_spec, spec_names, vrange

ALL = [(stem, v) for stem in spec_names() for v in vrange(load_spec(stem)["versions"])]


def normalise(value: Any) -> Any:
    """memoryview (RECORDS) compares as bytes; dict subclasses as dicts."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def test_every_message_version_is_covered() -> None:
    assert len(ALL) > 600


@pytest.mark.parametrize("stem,version", ALL, ids=[f"{s}-v{v}" for s, v in ALL])
def test_compiled_codec_never_falls_back_to_the_interpreter(stem: str, version: int) -> None:
    c = codec(stem, version)
    assert c.compiled.module.linkedinstances == {}
    assert "linkedparsers[" not in c.compiled.source and "linkedbuilders[" not in c.compiled.source


@settings(max_examples=len(ALL) * 4, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_round_trip_every_message(data: st.DataObject) -> None:
    stem, version = data.draw(st.sampled_from(ALL), label="message")
    c = codec(stem, version)
    value = data.draw(for_struct(c.schema), label="value")
    encoded = bytes(c.encode(value))
    decoded, end = c.decode(encoded)
    assert end == len(encoded)
    assert normalise(decoded) == normalise(value)
    # The interpreted construct schema reads and writes the same bytes.
    assert normalise(c.schema.parse(encoded)) == normalise(value)
    assert c.schema.build(value) == encoded


@pytest.mark.parametrize("stem,version", [(s, v) for s, v in ALL if s.endswith(("request", "response"))][::7])
def test_defaults_round_trip(stem: str, version: int) -> None:
    """An empty mapping builds Kafka's default message, which parses back to the defaults."""
    c = codec(stem, version)
    decoded, _ = c.decode(bytes(c.encode({})))
    defaults = c.defaults()
    for name, value in defaults.items():
        if value is None and name in {f.name for f in c.schema.fields}:
            continue  # an absent struct field is built from its own defaults
        assert normalise(decoded[name]) == normalise(value), name


def test_unknown_tagged_fields_are_kept_and_written_back() -> None:
    c = codec("api_versions_request", 3)
    encoded = bytes(c.encode({"client_software_name": "a", "client_software_version": "1",
                              "_unknown_tags": [(7, b"xyz"), (3, b"")]}))
    decoded, _ = c.decode(encoded)
    assert decoded["_unknown_tags"] == [(3, b""), (7, b"xyz")]
    assert bytes(c.encode(decoded)) == encoded


def test_tagged_field_written_only_when_not_default() -> None:
    c = codec("fetch_response", 12)
    part = {"partition_index": 0, "records": b""}
    base = bytes(c.encode({"responses": [{"topic": "t", "partitions": [part]}]}))
    with_tag = bytes(c.encode({"responses": [{"topic": "t", "partitions": [
        dict(part, current_leader={"leader_id": 1, "leader_epoch": 2})]}]}))
    assert len(with_tag) > len(base)
    decoded, _ = c.decode(with_tag)
    assert decoded.responses[0].partitions[0].current_leader == {"leader_id": 1, "leader_epoch": 2}
    assert c.decode(base)[0].responses[0].partitions[0].current_leader is None


def test_records_are_zero_copy() -> None:
    c = codec("produce_request", 9)
    batch = b"\x01" * 4096
    encoded = bytes(c.encode({"acks": 1, "timeout_ms": 1, "topic_data": [
        {"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}))
    decoded, _ = c.decode(encoded)
    records = decoded.topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records.obj is encoded and bytes(records) == batch
