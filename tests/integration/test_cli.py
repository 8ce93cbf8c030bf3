"""The command line as a user runs it: `python -m pykbroker ...` subprocesses against a real broker
(in-process via running_broker, or a `pykbroker serve` subprocess whose ready line is parsed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from pykbroker.testing import RunningBroker
from pykbroker.tools.client import murmur2
from pykbroker.wire_client import WireClient

READY = re.compile(r"pykbroker ready: listening on ([\d.]+):(\d+), data in (.+?)(?:, metrics on (\S+))?$")
CLI_TIMEOUT_S = 60


def cli(*args: str, stdin: str | bytes | None = None, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([sys.executable, "-m", "pykbroker", *args], input=data, capture_output=True,
                          timeout=timeout)


def ok(*args: str, stdin: str | bytes | None = None) -> str:
    r = cli(*args, stdin=stdin)
    assert r.returncode == 0, (args, r.returncode, r.stdout.decode(), r.stderr.decode())
    return r.stdout.decode()


class ServeProcess:
    def __init__(self, proc: subprocess.Popen, line: str) -> None:
        self.proc = proc
        self.ready_line = line
        m = READY.match(line)
        assert m, line
        self.bootstrap = f"{m.group(1)}:{m.group(2)}"
        self.data_dir = Path(m.group(3))
        self.metrics_url = m.group(4)


def start_serve(*args: str) -> ServeProcess:
    proc = subprocess.Popen([sys.executable, "-m", "pykbroker", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()  # type: ignore[union-attr]
    if not line:
        proc.wait(10)
        raise AssertionError(f"no ready line; exit {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
    return ServeProcess(proc, line)


def stop_serve(server: ServeProcess) -> tuple[int, str]:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)
    err = server.proc.stderr.read()  # type: ignore[union-attr]
    server.proc.stdout.close()  # type: ignore[union-attr]
    server.proc.stderr.close()  # type: ignore[union-attr]
    return server.proc.returncode, err


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for s in started:
        stop_serve(s)


def topic_partitions(bootstrap: str, topic: str) -> int:
    c = WireClient(bootstrap)
    try:
        r = c.request(3, 12, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
        return len(r.topics[0].partitions)
    finally:
        c.close()


# ---------------------------------------------------------------------------- serve

def test_serve_prints_the_ready_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    server = start_serve("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"))
    try:
        assert server.data_dir == (tmp_path / "data").resolve() and server.metrics_url is None
        assert topic_partitions(server.bootstrap, "auto") == 1
    finally:
        code, err = stop_serve(server)
    assert code == 0
    # structured log lines: UTC timestamp, level, logger, message
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  pykbroker received SIGTERM: shutting down$",
                     err, re.M), err


@pytest.mark.parametrize("fmt", ["properties", "toml"])
def test_serve_reads_a_config_file_and_set_overrides_it(tmp_path: Path, serve_process: list, fmt: str) -> None:
    if fmt == "toml":
        path = tmp_path / "broker.toml"
        path.write_text('"num.partitions" = 4\n[auto.create.topics]\nenable = true\n'
                        '[log]\nretention.hours = 24\n"segment.bytes" = 1048576\n')
    else:
        path = tmp_path / "server.properties"
        path.write_text("# a Kafka server.properties\nnum.partitions=4\n! also a comment\n"
                        "auto.create.topics.enable = true\nlog.retention.hours: 24\nlog.segment.bytes=\\\n  1048576\n")
    server = start_serve("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--config", str(path))
    serve_process.append(server)
    assert topic_partitions(server.bootstrap, "from-file") == 4
    other = start_serve("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d2"), "--config", str(path),
                        "--set", "num.partitions=2")
    serve_process.append(other)
    assert topic_partitions(other.bootstrap, "from-set") == 2


def test_bare_command_serves_and_json_logs(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pykbroker", "--listen", "127.0.0.1:0", "--data-dir",
                             str(tmp_path), "--log-format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    server = ServeProcess(proc, proc.stdout.readline().strip())  # type: ignore[union-attr]
    code, err = stop_serve(server)
    assert code == 0
    assert '"level": "INFO", "logger": "pykbroker", "msg": "received SIGTERM: shutting down"' in err


@pytest.mark.parametrize("args, key", [
    (["--set", "no.such.key=1"], "no.such.key"),
    (["--set", "num.partitions=three"], "num.partitions"),
    (["--set", "auto.create.topics.enable=maybe"], "auto.create.topics.enable"),
])
def test_bad_setting_is_a_startup_error_naming_the_key(tmp_path: Path, args: list[str], key: str) -> None:
    r = cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), *args, timeout=30)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "configuration error" in err and key in err
    if key == "no.such.key":
        assert "not a Kafka broker config" in err
    elif key == "num.partitions":
        assert "expected integer" in err
    else:
        assert "expected boolean" in err
    assert r.stdout == b""  # never got ready


@pytest.mark.parametrize("name, text, key, accepted", [
    ("server.properties", "num.partitions=1\nbogus.setting=5\n", "bogus.setting", "not a Kafka broker config"),
    ("server.properties", "log.segment.bytes=lots\n", "log.segment.bytes", ""),
    ("broker.toml", '"num.partitions" = "many"\n', "num.partitions", "expected integer"),
    ("broker.toml", "[bogus]\nsetting = 1\n", "bogus.setting", "not a Kafka broker config"),
    ("broker.toml", "num.partitions = = 3\n", "broker.toml", "not valid TOML"),
])
def test_bad_config_file_is_a_startup_error_naming_the_key(tmp_path: Path, name: str, text: str, key: str,
                                                            accepted: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    r = cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), "--config", str(path), timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert key in err and str(path) in err and accepted in err


KAFKA_SERVER_PROPERTIES = """\
# the keys of Kafka's stock config/kraft/server.properties
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={data}
num.partitions=3
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""


def test_a_kafka_server_properties_starts_and_warns_once_of_keys_without_effect(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text(KAFKA_SERVER_PROPERTIES.format(data=tmp_path / "d"))
    server = start_serve("--config", str(path))
    try:
        assert topic_partitions(server.bootstrap, "kafka-props") == 3  # num.partitions was used
    finally:
        code, err = stop_serve(server)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "without effect" in line]
    assert len(warnings) == 1, err
    assert "process.roles" in warnings[0] and "num.io.threads" in warnings[0]
    assert "num.partitions" not in warnings[0]  # implemented keys are not listed
    assert err.count("closed logs") == 1, err


@pytest.mark.parametrize("args, message", [
    (["--set", "num.netwrk.threads=3"], "did you mean 'num.network.threads'?"),
    (["--listen", "127.0.0.1:99999"], "port must be in [0, 65535]"),
    (["--set", "socket.request.max.bytes=99999999999"], "socket.request.max.bytes='99999999999': must be in [1, 2147483647]"),
    (["--set", "num.io.threads=0"], "num.io.threads='0': must be in [1, 2147483647]"),
])
def test_unknown_key_bad_port_and_out_of_range_values_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    r = cli("serve", "--data-dir", str(tmp_path), *args, timeout=30)
    assert r.returncode == 2 and message in r.stderr.decode(), r.stderr
    assert r.stdout == b""


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("x")
    r = cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(path), timeout=30)
    assert r.returncode == 2 and f"log.dirs '{path}' is not a directory" in r.stderr.decode(), r.stderr
    assert path.read_text() == "x"


def test_missing_config_file_is_a_startup_error(tmp_path: Path) -> None:
    r = cli("serve", "--config", str(tmp_path / "nope.properties"), timeout=30)
    assert r.returncode == 2 and "nope.properties" in r.stderr.decode()


def test_port_in_use_is_a_clear_error(kafka_broker: RunningBroker, tmp_path: Path) -> None:
    r = cli("serve", "--listen", kafka_broker.bootstrap_servers, "--data-dir", str(tmp_path), timeout=30)
    err = r.stderr.decode()
    assert r.returncode == 1 and "cannot start" in err, err
    assert err.count("closed logs") == 1, err  # closed once, not once by run() and again by serve


# ---------------------------------------------------------------------------- help

@pytest.mark.parametrize("command", [
    [], ["serve"], ["topics"], ["topics", "list"], ["topics", "create"], ["topics", "delete"],
    ["topics", "describe"], ["produce"], ["consume"], ["groups"], ["groups", "list"], ["groups", "describe"],
    ["transactions"], ["transactions", "list"], ["transactions", "describe"],
])
def test_every_command_has_help(command: list[str]) -> None:
    r = cli(*command, "--help", timeout=30)
    assert r.returncode == 0 and r.stdout.startswith(b"usage: pykbroker"), r.stderr
    assert b"--bootstrap" in r.stdout or command in ([], ["serve"])


def test_usage_errors_exit_2() -> None:
    assert cli("topics", timeout=30).returncode == 2  # an action is required
    assert cli("produce", timeout=30).returncode == 2  # --topic is required


# ---------------------------------------------------------------------------- topics

def test_topics_create_list_describe_delete(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    assert ok("topics", "--bootstrap", b, "create", "orders", "--partitions", "3",
              "--config", "retention.ms=3600000", "--config", "cleanup.policy=delete") \
        == "Created topic orders with 3 partition(s).\n"
    ok("topics", "-b", b, "create", "audit")
    listed = ok("topics", "--bootstrap", b, "list").split()
    assert listed == ["__consumer_offsets", "audit", "orders"]
    assert ok("topics", "list", "--bootstrap", b, "--exclude-internal").split() == ["audit", "orders"]

    again = cli("topics", "--bootstrap", b, "create", "orders")
    assert again.returncode == 1 and b"TOPIC_ALREADY_EXISTS" in again.stderr
    ok("topics", "--bootstrap", b, "create", "orders", "--if-not-exists")
    bad = cli("topics", "--bootstrap", b, "create", "x", "--config", "retention.ms=soon")
    assert bad.returncode == 1 and b"INVALID_CONFIG" in bad.stderr

    ok("produce", "--bootstrap", b, "--topic", "orders", "--partition", "1", stdin="a\nb\n")
    described = ok("topics", "--bootstrap", b, "describe", "orders")
    lines = described.splitlines()
    assert re.match(r"Topic: orders\tTopicId: [\w-]{22}\tPartitionCount: 3\tReplicationFactor: 1\tInternal: false\t"
                    r"Configs: cleanup.policy=delete,retention.ms=3600000$",
                    lines[0]), lines[0]
    assert lines[1:] == [f"\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1\t"
                         f"LogStartOffset: 0\tLogEndOffset: {2 if p == 1 else 0}" for p in range(3)]
    missing = cli("topics", "--bootstrap", b, "describe", "nope")
    assert missing.returncode == 1 and b"UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr
    assert "nope" not in ok("topics", "--bootstrap", b, "list")  # describe never auto-creates

    assert ok("topics", "--bootstrap", b, "delete", "orders") == "Deleted topic orders.\n"
    assert ok("topics", "--bootstrap", b, "list", "--exclude-internal").split() == ["audit"]
    gone = cli("topics", "--bootstrap", b, "delete", "orders")
    assert gone.returncode == 1 and b"UNKNOWN_TOPIC_OR_PARTITION" in gone.stderr
    ok("topics", "--bootstrap", b, "delete", "orders", "--if-exists")


def test_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = cli("topics", "--bootstrap", f"127.0.0.1:{port}", "list", timeout=30)
    assert r.returncode == 1 and f"cannot connect to 127.0.0.1:{port}" in r.stderr.decode()


# ---------------------------------------------------------------------------- produce / consume

def test_produce_then_consume_round_trip_with_keys_and_headers(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    ok("topics", "--bootstrap", b, "create", "events", "--partitions", "4")
    lines = [f"user-{i}:payload {i} with: colon" for i in range(20)] + ["user-x:", "user-y:ünïcode"]
    ok("produce", "--bootstrap", b, "--topic", "events", "--key-separator", ":", "--header", "source=cli",
       "--header", "trace", stdin="\n".join(lines) + "\n")
    out = ok("consume", "--bootstrap", b, "--topic", "events", "--from-beginning", "--max-messages", "22",
             "--format", "%k|%v|%h|%p")
    got = out.splitlines()
    assert len(got) == 22
    expected = set()
    for line in lines:
        key, _, value = line.partition(":")
        # the Java client's partitioner (murmur2), as kafka-python computes it too
        partition = (kafka_python_murmur2(key.encode()) & 0x7FFFFFFF) % 4
        expected.add(f"{key}|{value}|source=cli,trace|{partition}")
    assert set(got) == expected
    # each partition in produce order
    keys = [line.partition(":")[0] for line in lines]
    for p in range(4):
        shown = [g.split("|")[0] for g in got if g.endswith(f"|{p}")]
        assert shown == [k for k in keys if (murmur2(k.encode()) & 0x7FFFFFFF) % 4 == p]

    one = ok("consume", "--bootstrap", b, "--topic", "events", "--partition", "0", "--from-beginning",
             "--max-messages", "1", "--format", "%t %p %o %K %S %T")
    topic, partition, offset, klen, vlen, ts = one.split()
    assert (topic, partition, offset) == ("events", "0", "0") and int(klen) > 0 and int(vlen) >= 0
    assert abs(int(ts) - time.time() * 1000) < 120_000


def test_consume_stops_after_idle_timeout_and_reads_only_new_records_by_default(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    ok("produce", "--bootstrap", b, "--topic", "quiet", stdin="old\n")
    started = time.monotonic()
    r = cli("consume", "--bootstrap", b, "--topic", "quiet", "--timeout-ms", "700")
    assert r.returncode == 0 and r.stdout == b""  # from the end: the old record is not shown
    assert b"Processed a total of 0 messages" in r.stderr
    assert time.monotonic() - started < 20
    r = cli("consume", "--bootstrap", b, "--topic", "quiet", "--timeout-ms", "700", "--from-beginning")
    assert r.stdout == b"old\n"


def test_keyless_values_with_separators_and_empty_lines(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    ok("produce", "--bootstrap", b, "--topic", "plain", stdin=b"a:b\n\nlast-without-newline")
    out = ok("consume", "--bootstrap", b, "--topic", "plain", "--from-beginning", "--max-messages", "3",
             "--format", "[%k][%v]")
    assert out == "[][a:b]\n[][]\n[][last-without-newline]\n"
    bad = cli("produce", "--bootstrap", b, "--topic", "plain", "-K", "=", stdin="k=v\nno separator\n")
    assert bad.returncode == 1 and b"line 2" in bad.stderr


def test_consume_with_a_group_resumes_where_it_committed(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    ok("produce", "--bootstrap", b, "--topic", "work", stdin="".join(f"job-{i}\n" for i in range(5)))
    first = ok("consume", "--bootstrap", b, "--topic", "work", "--group", "workers", "--from-beginning",
               "--max-messages", "2")
    assert first == "job-0\njob-1\n"
    second = ok("consume", "--bootstrap", b, "--topic", "work", "--group", "workers", "--from-beginning",
                "--timeout-ms", "500")
    assert second == "job-2\njob-3\njob-4\n"
    described = ok("groups", "--bootstrap", b, "describe", "workers")
    assert re.search(r"^workers\s+work\s+0\s+5\s+5\s+0\s+-\s+-\s+-$", described, re.M), described


# ---------------------------------------------------------------------------- groups

def test_groups_list_and_describe_show_lag_of_a_kafka_python_group(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    ok("topics", "--bootstrap", b, "create", "lagged", "--partitions", "2")
    ok("produce", "--bootstrap", b, "--topic", "lagged", "--partition", "0", stdin="".join(f"{i}\n" for i in range(6)))
    ok("produce", "--bootstrap", b, "--topic", "lagged", "--partition", "1", stdin="x\ny\n")

    consumer = KafkaConsumer("lagged", bootstrap_servers=b, group_id="readers", client_id="reader-1",
                             enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 8 and time.monotonic() < deadline:
            seen += sum(len(v) for v in consumer.poll(timeout_ms=200).values())
        assert seen == 8
        # commit less than was read: 4 of 6 on partition 0, 1 of 2 on partition 1
        from kafka.structs import OffsetAndMetadata
        consumer.commit({TopicPartition("lagged", 0): OffsetAndMetadata(4, "", -1),
                         TopicPartition("lagged", 1): OffsetAndMetadata(1, "", -1)})
        listed = ok("groups", "--bootstrap", b, "list")
        assert re.search(r"^readers\s+Stable\s+consumer$", listed, re.M), listed
        active = ok("groups", "--bootstrap", b, "describe", "readers")
        assert "state Stable, 1 member(s), protocol " in active.splitlines()[0]
        rows = [line.split() for line in active.splitlines()[3:]]
        assert [r[:6] for r in rows] == [["readers", "lagged", "0", "4", "6", "2"],
                                         ["readers", "lagged", "1", "1", "2", "1"]]
        assert all(r[6].startswith("reader-1") and r[8] == "reader-1" for r in rows)  # owning member
    finally:
        consumer.close()

    ok("produce", "--bootstrap", b, "--topic", "lagged", "--partition", "1", stdin="z\n")
    described = ok("groups", "--bootstrap", b, "describe", "readers")
    lines = described.splitlines()
    assert lines[0] == "Consumer group 'readers': state Empty, 0 member(s)"
    assert lines[2].split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                                "CONSUMER-ID", "HOST", "CLIENT-ID"]
    assert [line.split() for line in lines[3:]] == [["readers", "lagged", "0", "4", "6", "2", "-", "-", "-"],
                                                    ["readers", "lagged", "1", "1", "3", "2", "-", "-", "-"]]
    assert re.search(r"^readers\s+Empty\s+consumer$", ok("groups", "--bootstrap", b, "list"), re.M)
    missing = cli("groups", "--bootstrap", b, "describe", "nobody")
    assert missing.returncode == 1 and b"does not exist" in missing.stderr


def test_simple_commit_is_refused_while_the_group_has_members(kafka_broker: RunningBroker) -> None:
    b = kafka_broker.bootstrap_servers
    ok("produce", "--bootstrap", b, "--topic", "busy", stdin="a\n")
    consumer = KafkaConsumer("busy", bootstrap_servers=b, group_id="busy-group", enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        r = cli("consume", "--bootstrap", b, "--topic", "busy", "--group", "busy-group", "--from-beginning",
                "--max-messages", "1")
        assert r.stdout == b"a\n"  # the records are shown...
        assert r.returncode == 1 and b"offsets not committed" in r.stderr  # ...but the commit is refused
    finally:
        consumer.close()


def test_environment_is_not_needed(kafka_broker: RunningBroker) -> None:
    """The tools run with a bare environment (no PYTHONPATH tricks, no client library config)."""
    env = {"PATH": os.environ.get("PATH", "")}
    r = subprocess.run([sys.executable, "-m", "pykbroker", "topics", "-b", kafka_broker.bootstrap_servers, "list"],
                       capture_output=True, env=env, timeout=CLI_TIMEOUT_S)
    assert r.returncode == 0 and b"__consumer_offsets" in r.stdout
