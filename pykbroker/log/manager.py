"""The set of partition logs under one ``log.dirs`` directory, and topic metadata.

Layout::

    <log_dir>/__topics/<topic>.json          topic id, partition count, config overrides
    <log_dir>/<topic>-<partition>/            one PartitionLog per partition, with a
                                              Kafka-style ``partition.metadata`` (topic id)
    <log_dir>/<topic>-<p>.<id>-delete/        a deleted partition, removed in the background
    <log_dir>/<topic>-<p>.<id>-stray/         an unclaimed directory a new topic displaced (kept)

The topic file is the commit point of a creation: the partition directories are made first,
then the topic file is written (atomically). A deletion first renames the partition
directories to ``*-delete`` (as Kafka does), then removes the topic file, and the owner removes
the renamed directories off the event loop. So start-up recognises deletions by name alone and
never has to infer from metadata what may be deleted: it removes only ``*-delete`` directories
(handed to the owner, see ``take_pending_deletions``) and ``*.tmp`` files of interrupted atomic
writes. An unreadable topic file or ``partition.metadata`` stops start-up
(UnreadableMetadataError naming the file); a partition directory no topic file claims is kept
and reported.

Metadata changes come in three steps so the blocking part (file writes with fsync, renames)
can run in a worker thread while the in-memory check-and-apply stays on the event loop:
``prepare_*`` validates (and reserves a new name), ``write_*`` does the disk work and touches no
shared state, ``install_*`` applies the result. The plain methods (``create_topic`` ...) chain
the three for synchronous callers. A failed ``write_*`` (ENOSPC, EIO) raises KafkaStorageError
and leaves disk and memory as they were.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from pykbroker.log.checkpoint import fsync_dir, remove_stray_tmp_files, write_atomic
from pykbroker.log.config import LogConfig, upgrade_stored_configs
from pykbroker.log.errors import (
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaStorageError,
    TopicExistsError,
    UnknownTopicOrPartitionError,
    UnreadableMetadataError,
)
from pykbroker.log.partition_log import PartitionLog

log = logging.getLogger(__name__)

TOPICS_DIR: Final = "__topics"
PARTITION_METADATA_FILE: Final = "partition.metadata"
MAX_TOPIC_NAME_LENGTH: Final = 249
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")
DELETE_SUFFIX: Final = "-delete"
STRAY_SUFFIX: Final = "-stray"


def kafka_uuid_str(u: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(u.bytes).rstrip(b"=").decode()


def parse_kafka_uuid(s: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


def new_topic_id() -> uuid.UUID:
    """A random id Kafka would accept (not the reserved 0/1 ids, no leading '-')."""
    while True:
        u = uuid.uuid4()
        if u.int > 1 and not kafka_uuid_str(u).startswith("-"):
            return u


def validate_topic_name(name: str) -> None:
    """Kafka's ``Topic.validate``."""
    if not name:
        raise InvalidTopicError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"Topic name cannot be \"{name}\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}"
        )
    if not _LEGAL_TOPIC.match(name):
        raise InvalidTopicError(
            f"Topic name \"{name}\" is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )


@dataclass(slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: int
    #: The topic's explicit config overrides (Kafka names -> strings).
    configs: dict[str, str] = field(default_factory=dict)
    #: Effective config: broker defaults overlaid with ``configs``.
    config: LogConfig = field(default_factory=LogConfig)

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "topic_id": str(self.topic_id), "partitions": self.partitions, "configs": self.configs},
            indent=1,
            sort_keys=True,
        )


class LogManager:
    """Owns every partition log under ``log_dir`` and the topics they belong to."""

    def __init__(self, log_dir: Path, default_config: LogConfig | None = None, *, fsync: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.default_config = default_config if default_config is not None else LogConfig()
        self.fsync = fsync
        self._topics: dict[str, TopicInfo] = {}
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._reserved: set[str] = set()  # names being created (between prepare and install)
        self._pending_deletions: list[Path] = []
        self._load()

    @classmethod
    def open(cls, log_dir: Path, default_config: LogConfig | None = None, *, fsync: bool = True) -> LogManager:
        return cls(Path(log_dir), default_config, fsync=fsync)

    # ----------------------------------------------------------------- loading

    @property
    def _topics_dir(self) -> Path:
        return self.log_dir / TOPICS_DIR

    def _topic_file(self, name: str) -> Path:
        return self._topics_dir / f"{name}.json"

    def _partition_dir(self, name: str, partition: int) -> Path:
        return self.log_dir / f"{name}-{partition}"

    def _load(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._topics_dir.mkdir(exist_ok=True)
        for directory in (self.log_dir, self._topics_dir):
            for tmp in remove_stray_tmp_files(directory):
                log.info("removed %s left by an interrupted atomic write", tmp)
        self._pending_deletions = sorted(
            p for p in self.log_dir.iterdir() if p.is_dir() and p.name.endswith(DELETE_SUFFIX))
        errors = []
        for path in sorted(self._topics_dir.glob("*.json")):
            try:
                info = self._read_topic_file(path)
            except UnreadableMetadataError as exc:
                errors.append(str(exc))
                continue
            self._topics[info.name] = info
        if errors:
            raise UnreadableMetadataError(
                "; ".join(errors) + ". Refusing to start so that no partition data is deleted or hidden: "
                "repair the file, or move it (and the topic's partition directories) out of the data directory")
        unclaimed = []
        for path in sorted(self.log_dir.iterdir()):
            m = _PARTITION_DIR.match(path.name)
            if m and path.is_dir():
                info = self._topics.get(m.group(1))
                if info is None or int(m.group(2)) >= info.partitions:
                    unclaimed.append(path.name)
        if unclaimed:
            log.warning(
                "keeping partition director%s %s in %s that no topic file in %s claims (an interrupted topic "
                "creation, or a topic file removed by hand); they are not served: restore the topic file or "
                "move them away", "y" if len(unclaimed) == 1 else "ies", ", ".join(unclaimed), self.log_dir,
                TOPICS_DIR)
        for info in self._topics.values():
            for p in range(info.partitions):
                self._logs[(info.name, p)] = self._open_partition(info, p, at_start=True)

    def _read_topic_file(self, path: Path) -> TopicInfo:
        try:
            raw = json.loads(path.read_bytes())
            configs = upgrade_stored_configs({str(k): str(v) for k, v in raw.get("configs", {}).items()})
            info = TopicInfo(
                name=raw["name"],
                topic_id=uuid.UUID(raw["topic_id"]),
                partitions=int(raw["partitions"]),
                configs=configs,
                config=LogConfig.from_kafka_configs(configs, self.default_config),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UnreadableMetadataError(f"cannot read topic metadata {path}: {exc!r}") from exc
        if info.name != path.stem or info.partitions < 1:
            raise UnreadableMetadataError(
                f"topic metadata {path} names topic {info.name!r} with {info.partitions} partition(s), "
                f"which does not fit its file name")
        return info

    def _open_partition(self, info: TopicInfo, partition: int, *, at_start: bool = False) -> PartitionLog:
        """Open (creating if needed) one partition's directory. Touches no shared state."""
        d = self._partition_dir(info.name, partition)
        meta = d / PARTITION_METADATA_FILE
        if meta.exists():
            found = _read_partition_topic_id(meta)
            if found != info.topic_id:
                if at_start:
                    raise UnreadableMetadataError(
                        f"{meta} names topic id {kafka_uuid_str(found)} but {self._topic_file(info.name)} says "
                        f"{kafka_uuid_str(info.topic_id)}; refusing to start so that no data is deleted or hidden: "
                        f"move {d} away if it belongs to an older topic")
                stray = d.with_name(f"{d.name}.{uuid.uuid4().hex}{STRAY_SUFFIX}")
                log.warning("new topic %s: moving the unclaimed directory %s (topic id %s) aside to %s; "
                            "it is kept", info.name, d.name, kafka_uuid_str(found), stray.name)
                d.rename(stray)
        d.mkdir(parents=True, exist_ok=True)
        if at_start:
            for tmp in remove_stray_tmp_files(d):
                log.info("removed %s left by an interrupted atomic write", tmp)
        if not meta.exists():
            write_atomic(
                meta, f"version: 0\ntopic_id: {kafka_uuid_str(info.topic_id)}\n".encode(), fsync=self.fsync
            )
        return PartitionLog.open(d, info.config, fsync=self.fsync)

    def take_pending_deletions(self) -> list[Path]:
        """``*-delete`` directories found at start-up, for the owner to remove (``remove_dirs``)."""
        pending, self._pending_deletions = self._pending_deletions, []
        return pending

    # ------------------------------------------------------------------ topics

    @property
    def topics(self) -> dict[str, TopicInfo]:
        return dict(self._topics)

    def topic(self, name: str) -> TopicInfo:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicOrPartitionError(f"unknown topic {name!r}") from None

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        for info in self._topics.values():
            if info.topic_id == topic_id:
                return info
        return None

    def prepare_create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        topic_id: uuid.UUID | None = None,
        reserve: bool = True,
    ) -> TopicInfo:
        """Validate a CreateTopics entry; with ``reserve`` the name is taken until install/abort."""
        validate_topic_name(name)
        if name in self._topics or name in self._reserved:
            raise TopicExistsError(f"Topic '{name}' already exists.")
        collision = name.replace(".", "_")
        for other in (*self._topics, *self._reserved):
            if other.replace(".", "_") == collision:
                raise InvalidTopicError(
                    f"Topic '{name}' collides with existing topic: {other}"
                )
        if partitions < 1:
            raise InvalidPartitionsError("Number of partitions must be larger than 0.")
        overrides = {k: str(v).strip() for k, v in (configs or {}).items() if v is not None}
        config = LogConfig.from_kafka_configs(overrides, self.default_config)
        info = TopicInfo(name, topic_id or new_topic_id(), partitions, overrides, config)
        if reserve:
            self._reserved.add(name)
        return info

    def write_new_topic(self, info: TopicInfo) -> dict[int, PartitionLog]:
        """Disk part of a creation (worker-thread safe): partition directories, then the topic file."""
        plogs = self._make_partitions(info, range(info.partitions))
        try:
            self._write_topic_file(info)
        except BaseException:
            self._unmake_partitions(info, plogs)
            raise
        return plogs

    def install_topic(self, info: TopicInfo, plogs: Mapping[int, PartitionLog]) -> None:
        self._reserved.discard(info.name)
        self._topics[info.name] = info
        for p, plog in plogs.items():
            self._logs[(info.name, p)] = plog

    def abort_create(self, name: str) -> None:
        """Release a name reserved by ``prepare_create_topic`` whose creation failed."""
        self._reserved.discard(name)

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        topic_id: uuid.UUID | None = None,
        validate_only: bool = False,
    ) -> TopicInfo:
        """Create a topic and its partition logs (CreateTopics); validate everything first."""
        info = self.prepare_create_topic(name, partitions, configs, topic_id=topic_id, reserve=not validate_only)
        if validate_only:
            return info
        try:
            self.install_topic(info, self.write_new_topic(info))
        finally:
            self.abort_create(name)
        return info

    def write_topic_deletion(self, info: TopicInfo) -> list[Path]:
        """Disk part of a deletion (worker-thread safe): rename the partition directories to
        ``*-delete``, then remove the topic file. Returns the renamed directories; removing them
        is the caller's (background) job. On failure every rename is undone."""
        renamed: list[tuple[Path, Path]] = []
        try:
            for p in range(info.partitions):
                d = self._partition_dir(info.name, p)
                if d.exists():
                    doomed = d.with_name(f"{d.name}.{uuid.uuid4().hex}{DELETE_SUFFIX}")
                    _storage(f"cannot rename {d} to {doomed.name}", d.rename, doomed)
                    renamed.append((d, doomed))
            if self.fsync:
                _storage(f"cannot fsync {self.log_dir}", fsync_dir, self.log_dir)
            path = self._topic_file(info.name)
            _storage(f"cannot remove topic metadata {path}", path.unlink, missing_ok=True)
            if self.fsync:
                _storage(f"cannot fsync {self._topics_dir}", fsync_dir, self._topics_dir)
        except BaseException:
            for original, doomed in reversed(renamed):
                try:
                    doomed.rename(original)
                except OSError as exc:
                    log.error("could not undo the rename of %s to %s: %s; rename it back by hand before "
                              "the next start, which would remove it", original, doomed, exc)
            raise
        return [doomed for _, doomed in renamed]

    def forget_topic(self, name: str) -> TopicInfo:
        """In-memory part of a deletion, after ``write_topic_deletion`` succeeded."""
        info = self._topics.pop(name)
        for p in range(info.partitions):
            plog = self._logs.pop((name, p), None)
            if plog is not None:
                plog.close_handles()
        return info

    def delete_topic(self, name: str) -> list[Path]:
        """Delete a topic (DeleteTopics); returns its renamed directories for ``remove_dirs``."""
        doomed = self.write_topic_deletion(self.topic(name))
        self.forget_topic(name)
        return doomed

    def prepare_create_partitions(self, name: str, total: int) -> TopicInfo:
        """Validate CreatePartitions; returns the topic's info as it will be."""
        info = self.topic(name)
        if total == info.partitions:  # Kafka's messages (ReplicationControlManager.createPartitions)
            raise InvalidPartitionsError(f"Topic already has {total} partition(s).")
        if total < info.partitions:
            raise InvalidPartitionsError(f"The topic {name} currently has {info.partitions} partition(s); {total} "
                                         f"would not be an increase.")
        return dataclasses.replace(info, partitions=total, configs=dict(info.configs))

    def write_new_partitions(self, new: TopicInfo) -> dict[int, PartitionLog]:
        """Disk part of CreatePartitions (worker-thread safe): directories, then the topic file."""
        old = self.topic(new.name).partitions
        plogs = self._make_partitions(new, range(old, new.partitions))
        try:
            self._write_topic_file(new)
        except BaseException:
            self._unmake_partitions(new, plogs)
            raise
        return plogs

    def install_partitions(self, new: TopicInfo, plogs: Mapping[int, PartitionLog]) -> None:
        self._topics[new.name].partitions = new.partitions
        for p, plog in plogs.items():
            self._logs[(new.name, p)] = plog

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> TopicInfo:
        """Grow a topic to ``total`` partitions (CreatePartitions)."""
        new = self.prepare_create_partitions(name, total)
        if validate_only:
            return self.topic(name)
        self.install_partitions(new, self.write_new_partitions(new))
        return self.topic(name)

    def prepare_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> TopicInfo:
        """Validate new config overrides; returns the topic's info as it will be."""
        info = self.topic(name)
        overrides = {k: str(v).strip() for k, v in configs.items() if v is not None}
        config = LogConfig.from_kafka_configs(overrides, self.default_config)
        return TopicInfo(info.name, info.topic_id, info.partitions, overrides, config)

    def write_topic_configs(self, new: TopicInfo) -> None:
        """Disk part of AlterConfigs (worker-thread safe)."""
        self._write_topic_file(new)

    def install_topic_configs(self, new: TopicInfo) -> None:
        info = self._topics[new.name]
        info.configs, info.config = new.configs, new.config
        for p in range(info.partitions):
            self._logs[(info.name, p)].update_config(info.config)

    def set_topic_configs(self, name: str, configs: Mapping[str, str | None], *, validate_only: bool = False) -> TopicInfo:
        """Replace a topic's config overrides (AlterConfigs; incremental callers compute the full set)."""
        new = self.prepare_topic_configs(name, configs)
        if validate_only:
            return new
        self.write_topic_configs(new)
        self.install_topic_configs(new)
        return self._topics[name]

    def _write_topic_file(self, info: TopicInfo) -> None:
        path = self._topic_file(info.name)
        _storage(f"cannot write topic metadata {path}", write_atomic, path, info.to_json().encode(),
                 fsync=self.fsync)

    def _make_partitions(self, info: TopicInfo, partitions: Iterable[int]) -> dict[int, PartitionLog]:
        """Create and open partition directories; on failure undo what this call made."""
        plogs: dict[int, PartitionLog] = {}
        made: list[Path] = []
        try:
            for p in partitions:
                d = self._partition_dir(info.name, p)
                if not d.exists():
                    made.append(d)
                try:
                    plogs[p] = _storage(f"cannot create partition directory {d}", self._open_partition, info, p)
                except UnreadableMetadataError as exc:  # a leftover directory in the way
                    raise KafkaStorageError(str(exc)) from exc
            if self.fsync:
                _storage(f"cannot fsync {self.log_dir}", fsync_dir, self.log_dir)
        except BaseException:
            self._unmake_partitions(info, plogs, made)
            raise
        return plogs

    def _unmake_partitions(self, info: TopicInfo, plogs: Mapping[int, PartitionLog],
                           made: Iterable[Path] | None = None) -> None:
        """Undo ``_make_partitions``: close the logs, remove the (new, empty) directories it made."""
        for plog in plogs.values():
            plog.close_handles()
        if made is None:  # every directory of plogs was made by this operation
            made = [self._partition_dir(info.name, p) for p in plogs]
        remove_dirs(made)

    def set_default_config(self, default_config: LogConfig) -> None:
        """Change the broker-level defaults; every topic's effective config is recomputed."""
        self.default_config = default_config
        for info in self._topics.values():
            info.config = LogConfig.from_kafka_configs(info.configs, default_config)
            for p in range(info.partitions):
                self._logs[(info.name, p)].update_config(info.config)

    # -------------------------------------------------------------------- logs

    def get_log(self, topic: str, partition: int) -> PartitionLog:
        try:
            return self._logs[(topic, partition)]
        except KeyError:
            raise UnknownTopicOrPartitionError(
                f"This server does not host this topic-partition: {topic}-{partition}"
            ) from None

    def logs(self) -> Iterator[tuple[str, int, PartitionLog]]:
        for (topic, partition), plog in self._logs.items():
            yield topic, partition, plog

    def close(self) -> None:
        for plog in self._logs.values():
            plog.close()
        self._logs.clear()

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_partition_topic_id(path: Path) -> uuid.UUID:
    """The topic id of a ``partition.metadata`` file; UnreadableMetadataError if it has none."""
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "topic_id":
                return parse_kafka_uuid(value.strip())
        problem = "no topic_id line"
    except (OSError, ValueError) as exc:
        problem = repr(exc)
    raise UnreadableMetadataError(f"cannot read the topic id in {path}: {problem}")


def remove_dirs(paths: Iterable[Path]) -> None:
    """Remove deleted directories (blocking: call it from a worker thread). Never raises: a
    directory that cannot be removed keeps its ``-delete`` name and goes at the next start."""
    for path in paths:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("could not remove %s: %s", path, exc)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _storage(what: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run one disk step; an OSError becomes KafkaStorageError naming the file."""
    try:
        return fn(*args, **kwargs)
    except OSError as exc:
        raise KafkaStorageError(f"{what}: {exc.strerror or exc}") from exc
