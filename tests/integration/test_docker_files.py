"""docker/: the Dockerfile, the compose file, .dockerignore and the entrypoint's env -> CLI mapping.

No Docker daemon is needed: the Dockerfile and compose file are parsed here (a small Dockerfile reader,
a block-YAML subset reader, and PyYAML too when it is installed); the entrypoint is imported and its
arguments are fed to pykbroker's own CLI parser; the health check talks to a real broker.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import socket
from pathlib import Path
from types import ModuleType

import pytest

from pykbroker.cli import build_parser, config_from_args
from pykbroker.testing import running_broker

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
COMPOSE = REPO_ROOT / "docker" / "docker-compose.yml"
ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.py"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def load_entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pykbroker_docker_entrypoint", ENTRYPOINT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# ---- Dockerfile

def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are skipped, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, args = full.partition(" ")
        out.append((word.upper(), " ".join(args.split())))
    assert not pending, "the Dockerfile ends inside a continuation"
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def args_of(instructions: list[tuple[str, str]], name: str) -> list[str]:
    return [a for i, a in instructions if i == name]


def test_dockerfile_instructions_are_valid(dockerfile) -> None:
    unknown = [i for i, _ in dockerfile if i not in INSTRUCTIONS]
    assert not unknown
    first = next(i for i, _ in dockerfile if i != "ARG")
    assert first == "FROM"
    assert args_of(dockerfile, "FROM") == ["python:3.11-slim"]
    for name in ("ENTRYPOINT", "CMD"):
        [form] = args_of(dockerfile, name)
        assert isinstance(json.loads(form), list), f"{name} must use the JSON (exec) form"


def test_dockerfile_installs_the_repo_and_runs_unprivileged(dockerfile) -> None:
    assert ". /src" in args_of(dockerfile, "COPY")
    run = " ".join(args_of(dockerfile, "RUN"))
    assert "pip install /src" in run
    assert "docker/entrypoint.py /usr/local/bin/pykbroker-entrypoint" in run
    assert json.loads(args_of(dockerfile, "ENTRYPOINT")[0]) == ["pykbroker-entrypoint"]
    users = args_of(dockerfile, "USER")
    assert users, "no USER: the broker would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert f"--uid {user}" in run, "the USER's uid is created in a RUN step"
    assert "chown" in run and "/data" in run


def test_dockerfile_volume_port_and_healthcheck(dockerfile) -> None:
    volumes = args_of(dockerfile, "VOLUME")
    assert any("/data" in (json.loads(v) if v.startswith("[") else v.split()) for v in volumes)
    assert any("9092" in e.replace("/tcp", "").split() for e in args_of(dockerfile, "EXPOSE"))
    [health] = args_of(dockerfile, "HEALTHCHECK")
    options, _, command = health.partition("CMD ")
    assert command, "HEALTHCHECK needs a CMD"
    assert json.loads(command) == ["pykbroker-entrypoint", "--healthcheck"]
    for option in options.split():
        assert re.fullmatch(r"--(interval|timeout|start-period|start-interval|retries)=\w+", option), option


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        for pattern in patterns:
            plain = pattern.removeprefix("**/")
            for prefix in prefixes:
                if fnmatch.fnmatchcase(prefix, pattern) or (pattern.startswith("**/") and (
                        fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], plain) or fnmatch.fnmatchcase(prefix, plain))):
                    return True
        return False

    for needed in ("pyproject.toml", "README.md", "pykbroker/__init__.py", "pykbroker/log/partition.py",
                   "protocol_specs/ApiVersionsRequest.json", "docker/entrypoint.py"):
        assert not ignored(needed), needed
    for dropped in (".venv/bin/python", ".git/HEAD", ".tools/java-lib/kafka-clients.jar",
                    "pykbroker/__pycache__/cli.cpython-311.pyc", "data/00000.log", "pykbroker-data/t-0/x.log"):
        assert ignored(dropped), dropped


# ---- docker-compose.yml

def parse_block_yaml(text: str) -> object:
    """The block-YAML subset the compose file is written in: mappings, `- ` lists, plain or quoted scalars."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        assert "\t" not in raw[: len(raw) - len(raw.lstrip())], "tabs in indentation"
        lines.append((len(raw) - len(raw.lstrip(" ")), raw.strip()))

    def scalar(text: str) -> str:
        text = re.sub(r"\s+#.*$", "", text) if not text.startswith(("'", '"')) else text
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        assert not text.startswith(("{", "[", "&", "*", "!", "|", ">")), f"outside the subset: {text!r}"
        return text

    def block(i: int, indent: int) -> tuple[object, int]:
        if lines[i][1].startswith("- "):
            items = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                items.append(scalar(lines[i][1][2:].strip()))
                i += 1
            return items, i
        mapping: dict[str, object] = {}
        while i < len(lines) and lines[i][0] == indent:
            key, sep, rest = lines[i][1].partition(":")
            assert sep and (not rest or rest.startswith(" ")), f"not a 'key: value' line: {lines[i][1]!r}"
            assert key not in mapping, f"duplicate key {key!r}"
            rest = rest.strip()
            if rest and not rest.startswith("#"):
                mapping[key] = scalar(rest)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1][0] > indent:
                mapping[key], i = block(i + 1, lines[i + 1][0])
            else:
                mapping[key] = None
                i += 1
        return mapping, i

    doc, end = block(0, lines[0][0])
    assert end == len(lines), f"unparsed line: {lines[end][1]!r}"
    return doc


def check_compose(doc: dict) -> None:
    broker = doc["services"]["broker"]
    assert broker["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    env = {k: str(v) for k, v in broker["environment"].items()}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://broker:9092"
    [mount] = broker["volumes"]
    volume, _, target = mount.partition(":")
    assert target == "/data" and volume in doc["volumes"]
    assert any(str(p).endswith("9092") for p in broker["ports"])
    # what the entrypoint makes of this environment is a configuration pykbroker accepts
    args = load_entrypoint().build_args(env)
    config = config_from_args(build_parser().parse_args(args))
    assert config.num_partitions == 3
    assert config.advertised_listeners == "PLAINTEXT://broker:9092"
    assert config.listen_host_port == ("0.0.0.0", 9092)


def test_compose_file_parses_and_wires_the_broker() -> None:
    check_compose(parse_block_yaml(COMPOSE.read_text()))


def test_compose_file_with_pyyaml() -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(COMPOSE.read_text())
    check_compose(doc)
    assert doc == parse_block_yaml(COMPOSE.read_text())  # every scalar in the file is a string to PyYAML too


# ---- entrypoint

@pytest.fixture(scope="module")
def entrypoint() -> ModuleType:
    return load_entrypoint()


def test_env_names_map_to_kafka_config_keys(entrypoint) -> None:
    m = entrypoint.env_key_to_config
    assert m("KAFKA_NUM_PARTITIONS") == "num.partitions"
    assert m("KAFKA_ADVERTISED_LISTENERS") == "advertised.listeners"
    assert m("KAFKA_LISTENERS") == "listeners"
    assert m("KAFKA_LOG_RETENTION_HOURS") == "log.retention.hours"
    assert m("KAFKA_SOME__UNDERSCORE") == "some_underscore"
    assert m("KAFKA_SOME___DASH") == "some-dash"


def test_defaults_without_environment(entrypoint) -> None:
    assert entrypoint.build_args({}) == ["--listen", "0.0.0.0:9092", "--data-dir", "/data"]
    config = config_from_args(build_parser().parse_args(entrypoint.build_args({"PATH": "/usr/bin"})))
    assert config.listen_host_port == ("0.0.0.0", 9092)
    assert str(config.data_dir) == "/data"


def test_environment_becomes_set_options(entrypoint) -> None:
    env = {"KAFKA_NUM_PARTITIONS": "3", "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:19092",
           "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://broker:19092", "KAFKA_LOG_DIRS": "/var/lib/kafka",
           "CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk", "PYKBROKER_LOG_LEVEL": "DEBUG", "HOME": "/root"}
    args = entrypoint.build_args(env, ["--set", "num.partitions=5"])
    assert "--listen" not in args and "--data-dir" not in args
    assert args[:2] == ["--log-level", "DEBUG"]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert sets == ["advertised.listeners=PLAINTEXT://broker:19092", "listeners=PLAINTEXT://0.0.0.0:19092",
                    "log.dirs=/var/lib/kafka", "num.partitions=3", "cluster.id=MkU3OEVBNTcwNTJENDM2Qk",
                    "num.partitions=5"]
    config = config_from_args(build_parser().parse_args(args))
    assert config.num_partitions == 5  # the command line wins over the environment
    assert config.listen_host_port == ("0.0.0.0", 19092)
    assert config.advertised_listeners == "PLAINTEXT://broker:19092"
    assert config.cluster_id == "MkU3OEVBNTcwNTJENDM2Qk"


def test_jvm_and_cluster_only_variables_are_ignored_with_a_note(entrypoint) -> None:
    notes: list[str] = []
    env = {"KAFKA_HEAP_OPTS": "-Xmx1G", "KAFKA_JMX_PORT": "9999", "KAFKA_PROCESS_ROLES": "broker,controller",
           "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@broker:9093", "KAFKA_NODE_ID": "1"}
    args = entrypoint.build_args(env, notes=notes)
    assert [a for a in args if a.startswith(("process.", "controller.", "heap", "jmx"))] == []
    assert "node.id=1" in args
    assert len(notes) == 4 and any("KAFKA_HEAP_OPTS" in n for n in notes)
    config_from_args(build_parser().parse_args(args))  # accepted


def test_listener_address_for_the_health_check(entrypoint) -> None:
    assert entrypoint.listener_address({}) == ("127.0.0.1", 9092)
    assert entrypoint.listener_address({"KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:19092"}) == ("127.0.0.1", 19092)
    assert entrypoint.listener_address({"KAFKA_LISTENERS": "PLAINTEXT://10.1.2.3:9093"}) == ("10.1.2.3", 9093)


def test_health_check_against_a_live_and_a_dead_broker(entrypoint, capsys) -> None:
    with running_broker() as broker:
        env = {"KAFKA_LISTENERS": f"PLAINTEXT://0.0.0.0:{broker.port}"}
        assert entrypoint.main(["--healthcheck"], env) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert entrypoint.main(["--healthcheck"], {"KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}"}) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_entrypoint_execs_the_broker_with_the_mapped_arguments(entrypoint, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(entrypoint.os, "execvp", lambda file, argv: calls.append((file, argv)))
    entrypoint.main(["serve", "--set", "log.retention.hours=1"], {"KAFKA_NUM_PARTITIONS": "2"})
    entrypoint.main(["bash", "-c", "true"], {})
    assert calls == [("pykbroker", ["pykbroker", "--listen", "0.0.0.0:9092", "--data-dir", "/data",
                                    "--set", "num.partitions=2", "--set", "log.retention.hours=1"]),
                     ("bash", ["bash", "-c", "true"])]


CLUSTER_COMPOSE = REPO_ROOT / "docker" / "docker-compose.cluster.yml"


def test_cluster_compose_file_wires_zookeeper_and_three_brokers() -> None:
    doc = parse_block_yaml(CLUSTER_COMPOSE.read_text())
    services = doc["services"]
    assert services["zookeeper"]["image"].startswith("zookeeper:")
    brokers = {name: s for name, s in services.items() if name.startswith("broker")}
    assert len(brokers) == 3
    ids = set()
    for name, service in brokers.items():
        env = {k: str(v) for k, v in service["environment"].items()}
        config = config_from_args(build_parser().parse_args(load_entrypoint().build_args(env)))
        assert config.zookeeper_connect == "zookeeper:2181/pykbroker"
        assert config.advertised_listeners == f"PLAINTEXT://{name}:9092"
        assert config.default_replication_factor == 3
        ids.add(config.node_id)
        [mount] = service["volumes"]
        assert mount.partition(":")[0] in doc["volumes"] and mount.endswith(":/data")
        assert "zookeeper" in service["depends_on"]
    assert ids == {1, 2, 3}
    assert brokers["broker1"]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(CLUSTER_COMPOSE.read_text()) == doc
