"""Cross-check against an independent encoder: kafka-python's hand-written protocol classes.

For every request/response version kafka-python defines, a value encoded by our codec is decoded
by kafka-python and re-encoded by it: the bytes must be identical (and the reverse holds by
construction, since kafka-python's bytes are then ours).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec_strategies import for_struct
from pykbroker.protocol.messages import request_codec, response_codec

old = pytest.importorskip("kafka.protocol.old", reason="kafka-python 3.x keeps its hand-written classes in kafka.protocol.old")


def kafka_python_classes() -> list[Any]:
    from kafka.protocol.old.api import Request, Response
    found = {}
    for mod in pkgutil.iter_modules(old.__path__):
        module = importlib.import_module(f"kafka.protocol.old.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, (Request, Response)) and cls not in (Request, Response) \
                    and isinstance(getattr(cls, "API_KEY", None), int) and getattr(cls, "SCHEMA", None) is not None:
                kind = "request" if issubclass(cls, Request) else "response"
                found[(cls.API_KEY, cls.API_VERSION, kind)] = cls
    return [found[k] for k in sorted(found)]


CLASSES = kafka_python_classes()
# kafka-python classes that do not follow Kafka's definition of that version (checked by hand
# against ../shared/kafka-protocol/message/*.json).
KNOWN_DIFFERENT = {
    "DescribeAclsRequest_v2": "kafka-python reuses the v1 (non-flexible) schema for flexible v2",
    "DescribeAclsResponse_v2": "kafka-python reuses the v1 (non-flexible) schema for flexible v2",
    "DescribeLogDirsRequest_v0": "kafka-python reads Partitions as INT32, Kafka defines []int32",
}


def ours(cls: Any) -> Any:
    from kafka.protocol.old.api import Request
    get = request_codec if issubclass(cls, Request) else response_codec
    return get(cls.API_KEY, cls.API_VERSION)


def test_a_useful_number_of_classes_is_compared() -> None:
    assert len(CLASSES) > 80


@pytest.mark.parametrize("cls", [c for c in CLASSES if c.__name__ not in KNOWN_DIFFERENT],
                         ids=lambda c: c.__name__)
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_kafka_python_reencodes_our_bytes_identically(cls: Any, data: st.DataObject) -> None:
    codec = ours(cls)
    value = data.draw(for_struct(codec.schema))
    if cls.API_KEY == 18 and "error_code" in value:
        # kafka-python reads an ApiVersions error response as v0 (what Kafka sends on
        # UNSUPPORTED_VERSION), so only error-free responses are comparable byte for byte.
        value["error_code"] = 0
    encoded = bytes(codec.encode(value))
    theirs = cls.decode(encoded)
    assert bytes(theirs.encode()) == encoded
