"""The golden-frame recording proxy (tests/tools/frame_proxy.py) forwards both ways unchanged and
records exactly the request frames a client sent, also on the connections Metadata sends it back to."""

from __future__ import annotations

import sys
from pathlib import Path

from pykbroker.protocol.frame import encode_request
from pykbroker.testing import running_broker
from pykbroker.wire_client import WireClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from frame_proxy import FrameProxy  # noqa: E402

SOFTWARE = {"client_software_name": "t", "client_software_version": "1"}


def test_proxy_records_each_request_frame_and_forwards_the_answers() -> None:
    frames: list[bytes] = []
    with FrameProxy(frames.append) as proxy:
        with running_broker({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"}) as broker:
            proxy.upstream = ("127.0.0.1", broker.port)
            client = WireClient(f"127.0.0.1:{proxy.port}")
            try:
                versions = client.request(18, 3, SOFTWARE)
                meta = client.request(3, 12, {"topics": None, "allow_auto_topic_creation": False,
                                              "include_topic_authorized_operations": False})
            finally:
                client.close()
    assert versions.error_code == 0 and len(versions.api_keys) > 10
    assert [(b.host, b.port) for b in meta.brokers] == [("127.0.0.1", proxy.port)]  # clients come back through it
    assert frames[0] == bytes(encode_request(18, 3, 1, "wire-test", SOFTWARE))[4:]
    assert [f[:2] for f in frames] == [b"\x00\x12", b"\x00\x03"]
