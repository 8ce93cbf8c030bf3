"""Requests captured from real clients (tests/data/frames/capture.py, through the recording proxy
tests/tools/frame_proxy.py) decode to what the client sent and re-encode to the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykbroker.protocol.frame import decode_request, encode_request
from pykbroker.protocol.messages import API_KEYS
from pykbroker.protocol.primitives import ZERO_UUID
from pykbroker.protocol.records import decode_records, validate_batches

FRAMES = sorted((Path(__file__).resolve().parents[1] / "data" / "frames").glob("*/*.bin"))
CLIENTS = {"kafka-python", "aiokafka", "librdkafka", "java-4.4", "franz-go"}
CLIENT_IDS = {"franz-go": "franzcheck"}  # franzcheck names itself; the others are told golden-<client>


def test_every_client_was_captured() -> None:
    assert {p.parent.name for p in FRAMES} == CLIENTS
    assert len(FRAMES) >= 50


@pytest.mark.parametrize("path", FRAMES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_decodes_and_reencodes_identically(path: Path) -> None:
    frame = path.read_bytes()
    request = decode_request(frame)
    h = request.header
    api_name, _, version = path.stem.rpartition("_v")
    assert (h.api_key, h.api_version) == (API_KEYS[api_name], int(version))
    assert h.client_id == CLIENT_IDS.get(path.parent.name, f"golden-{path.parent.name}")
    again = encode_request(h.api_key, h.api_version, h.correlation_id, h.client_id, request.body)[4:]
    assert again == frame[: len(frame) - request.trailing_bytes]
    check_values(api_name, request.body)


def golden(topic: dict, name_key: str = "name") -> bool:
    """The topic is "golden", by name or (Kafka 4 versions) by a topic id."""
    return topic.get(name_key) == "golden" or (name_key not in topic and topic["topic_id"] != ZERO_UUID)


def check_values(api_name: str, body: dict) -> None:
    if api_name == "PRODUCE":
        topic = body["topic_data"][0]
        part = topic["partition_data"][0]
        assert golden(topic) and part["index"] >= 0
        records = [r for _ in validate_batches(part["records"]) for r in decode_records(part["records"])]
        assert len(records) >= 1 and records[0].key in (b"k0", None) and records[0].value
    elif api_name == "FETCH":
        topic = body["topics"][0]
        assert golden(topic, "topic")
        assert topic["partitions"][0]["partition"] >= 0 and topic["partitions"][0]["fetch_offset"] >= 0
    elif api_name == "METADATA":
        names = [t["name"] for t in body["topics"] or []]
        assert set(names) <= {"golden"}
    elif api_name == "LIST_OFFSETS":
        assert body["topics"][0]["name"] == "golden"
        assert body["topics"][0]["partitions"][0]["timestamp"] in (-1, -2)
    elif api_name in ("OFFSET_COMMIT", "TXN_OFFSET_COMMIT"):
        assert golden(body["topics"][0]) and body["topics"][0]["partitions"][0]["committed_offset"] >= 0
    elif api_name == "API_VERSIONS" and "client_software_name" in body:
        assert body["client_software_name"]
