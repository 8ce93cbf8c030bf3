"""Run a real pykbroker inside a test process: a context manager and a pytest plugin.

    with running_broker() as broker:          # any code, not only pytest
        KafkaProducer(bootstrap_servers=broker.bootstrap_servers)

    def test_it(kafka_broker):                # pytest: the fixture from this plugin
        ...kafka_broker.bootstrap_servers...

The broker runs its own trio loop in a background thread, on a free port of 127.0.0.1, with a
temporary data directory; leaving the context stops it and removes the directory.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import trio

from .broker import Broker
from .config import BrokerConfig

START_TIMEOUT_S = 10


class RunningBroker:
    """A broker serving in a background thread; `bootstrap_servers` is its "host:port"."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.broker: Broker | None = None
        self.host = ""
        self.port = 0
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pykbroker", daemon=True)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._cancel = scope
            self.broker = Broker(self.config)
            async with trio.open_nursery() as nursery:
                self.host, self.port = await nursery.start(self.broker.run)
                # A test's first request finds its group coordinator loaded (no LOAD_IN_PROGRESS retry).
                await self.broker.coordinators_loaded.wait()
                self._ready.set()

    def start(self) -> "RunningBroker":
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError(f"pykbroker did not start within {START_TIMEOUT_S} s")
        if self._error is not None:
            raise RuntimeError(f"pykbroker failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        if self._token is not None and self._cancel is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(timeout=10)


@contextlib.contextmanager
def running_broker(settings: Mapping[str, Any] | None = None, data_dir: str | Path | None = None) -> Iterator[RunningBroker]:
    """A broker on 127.0.0.1:<free port>; `settings` are Kafka config names (e.g. num.partitions)."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pykbroker-"))
        raw = {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(data_dir)}
        raw.update({k: str(v) for k, v in (settings or {}).items()})
        running = RunningBroker(BrokerConfig.from_mapping(raw)).start()
        try:
            yield running
        finally:
            running.stop()


try:
    import pytest
except ImportError:  # pragma: no cover - the plugin is only loaded by pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture
    def kafka_broker(tmp_path: Path) -> Iterator[RunningBroker]:
        """A fresh pykbroker for one test: `kafka_broker.bootstrap_servers` is its address."""
        with running_broker(data_dir=tmp_path / "pykbroker-data") as broker:
            yield broker
