"""Prometheus metrics for `pykbroker serve --metrics HOST:PORT` (off by default).

Two sources:

* a `ServerObserver` fed by the connection loop: requests per API (count, latency histogram),
  request/response bytes, open connections;
* a collector that reads the broker's state when scraped: topics, partitions, log start/end
  offsets per partition, consumer groups, open transactions and last-stable-offset lag. It reads that state on the broker's trio thread
  (trio.from_thread), so a scrape never sees a half-updated dict.

prometheus-client serves /metrics from its own daemon thread. Nothing here is imported unless
--metrics is given, and without it the server's observer is None: no cost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .config import ConfigError
from .protocol.messages import API_NAMES
from .server.connection import ConnectionInfo

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("pykbroker.metrics")

#: Request latency buckets (seconds): a local broker answers most requests in well under 1 ms;
#: long-polling fetches wait up to their max_wait_ms.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SCRAPE_TIMEOUT_S = 5


def _api_name(api_key: int) -> str:
    """Kafka's API name in Kafka's own metric spelling: PRODUCE -> Produce, LIST_OFFSETS -> ListOffsets."""
    name = API_NAMES.get(api_key)
    if name is None:
        return str(api_key)
    return "".join(part.capitalize() for part in name.split("_"))


class BrokerMetrics:
    """The metric objects, in a registry of their own (several brokers in one process do not clash)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("pykbroker_requests", "Requests answered, by API.", ["api"], registry=r)
        self.latency = Histogram("pykbroker_request_latency_seconds",
                                 "Time from a request frame read to its response sent, by API.",
                                 ["api"], buckets=LATENCY_BUCKETS, registry=r)
        self.bytes_in = Counter("pykbroker_request_bytes", "Request frame bytes received (with size prefix), by API.",
                                ["api"], registry=r)
        self.bytes_out = Counter("pykbroker_response_bytes", "Response frame bytes sent (with size prefix), by API.",
                                 ["api"], registry=r)
        self.connections = Gauge("pykbroker_open_connections", "Client connections currently open.", registry=r)
        self.connections_total = Counter("pykbroker_connections", "Client connections accepted.", registry=r)
        # Children per API key, made on first use: the hot path is a dict lookup and four adds.
        self._children: dict[int, tuple[Any, Any, Any, Any]] = {}

    # ---------------------------------------------------------------- ServerObserver

    def on_connect(self, info: ConnectionInfo) -> None:
        self.connections.inc()
        self.connections_total.inc()

    def on_disconnect(self, info: ConnectionInfo) -> None:
        self.connections.dec()

    def on_request(self, api_key: int, bytes_in: int, bytes_out: int, seconds: float) -> None:
        children = self._children.get(api_key)
        if children is None:
            api = _api_name(api_key)
            children = (self.requests.labels(api), self.latency.labels(api),
                        self.bytes_in.labels(api), self.bytes_out.labels(api))
            self._children[api_key] = children
        count, latency, b_in, b_out = children
        count.inc()
        latency.observe(seconds)
        b_in.inc(bytes_in)
        b_out.inc(bytes_out)

    # ---------------------------------------------------------------- broker state

    def watch(self, broker: "Broker", token: trio.lowlevel.TrioToken | None = None) -> None:
        """Hook the server of `broker` (call before broker.run) and export its state at scrape time.
        With `token` (the broker's trio loop) the state is read on that loop's thread."""
        broker.observer = self
        self.registry.register(BrokerStateCollector(broker, token))


class BrokerStateCollector(Collector):
    """Gauges computed from the broker when scraped."""

    def __init__(self, broker: "Broker", token: trio.lowlevel.TrioToken | None) -> None:
        self.broker = broker
        self.token = token

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            snap = self._snapshot()
        except Exception as e:  # the broker stopped, or the loop is stuck: export nothing of it
            log.warning("metrics: could not read broker state: %s", e)
            return []
        topics = GaugeMetricFamily("pykbroker_topics", "Topics, internal ones included.")
        topics.add_metric([], snap["topics"])
        partitions = GaugeMetricFamily("pykbroker_partitions", "Partitions of all topics.")
        partitions.add_metric([], len(snap["logs"]))
        end = GaugeMetricFamily("pykbroker_log_end_offset", "Offset the next record of the partition gets.",
                                labels=["topic", "partition"])
        start = GaugeMetricFamily("pykbroker_log_start_offset", "First offset still in the partition's log.",
                                  labels=["topic", "partition"])
        size = GaugeMetricFamily("pykbroker_log_size_bytes", "Bytes of the partition's log segments.",
                                 labels=["topic", "partition"])
        for topic, partition, log_start, log_end, nbytes in snap["logs"]:
            labels = [topic, str(partition)]
            end.add_metric(labels, log_end)
            start.add_metric(labels, log_start)
            size.add_metric(labels, nbytes)
        groups = GaugeMetricFamily("pykbroker_groups", "Consumer groups known to the coordinator (with members "
                                   "or committed offsets).")
        groups.add_metric([], snap["groups"])
        lso_lag = GaugeMetricFamily("pykbroker_last_stable_offset_lag", "High watermark minus last stable "
                                    "offset: records read_committed consumers cannot see yet.", labels=["topic", "partition"])
        for topic, partition, lag in snap["lso_lag"]:
            lso_lag.add_metric([topic, str(partition)], lag)
        open_txns = GaugeMetricFamily("pykbroker_open_transactions", "Transactions begun and not yet completed.")
        open_txns.add_metric([], snap["open_transactions"])
        sessions = GaugeMetricFamily("pykbroker_fetch_sessions", "Fetch sessions (KIP-227) in the cache.")
        sessions.add_metric([], snap["fetch_sessions"])
        incremental = GaugeMetricFamily("pykbroker_incremental_fetches", "Incremental fetches served since start.")
        incremental.add_metric([], snap["incremental_fetches"])
        v2_adds = GaugeMetricFamily("pykbroker_transaction_v2_partition_adds", "Partitions added to transactions "
                                    "by Produce v12 / TxnOffsetCommit v5+ (KIP-890 part 2) since start.")
        v2_adds.add_metric([], snap["v2_partition_adds"])
        v2_bumps = GaugeMetricFamily("pykbroker_transaction_v2_epoch_bumps", "Transactions ended by EndTxn v5 "
                                     "with a producer epoch bump (KIP-890 part 2) since start.")
        v2_bumps.add_metric([], snap["v2_epoch_bumps"])
        return [topics, partitions, end, start, size, groups, lso_lag, open_txns, sessions, incremental, v2_adds,
                v2_bumps]

    def _snapshot(self) -> dict[str, Any]:
        read: Callable[[], dict[str, Any]] = self._read
        if self.token is None:
            return read()
        return trio.from_thread.run_sync(read, trio_token=self.token)

    def _read(self) -> dict[str, Any]:
        b = self.broker
        logs = [(topic, partition, plog.log_start_offset, plog.log_end_offset, plog.size_in_bytes)
                for topic, partition, plog in list(b.logs.logs())]
        logs.sort(key=lambda t: (t[0], t[1]))
        lso_lag = sorted((p.topic, p.index, p.high_watermark - p.last_stable_offset) for p in b.partitions)
        return {"topics": len(b.logs.topics), "logs": logs, "groups": len(b.groups.group_ids()),
                "lso_lag": lso_lag, "open_transactions": b.txns.open_transactions(),
                "fetch_sessions": len(b.fetch_sessions), "incremental_fetches": b.fetch_sessions.incremental_fetches,
                "v2_partition_adds": b.txns.v2_partition_adds, "v2_epoch_bumps": b.txns.v2_epoch_bumps}


def parse_address(text: str) -> tuple[str, int]:
    """--metrics HOST:PORT (or :PORT, or PORT) -> (host, port); host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--metrics {text!r}: expected HOST:PORT (port 0 picks a free port)")
    return (host.strip("[]") if sep and host else "127.0.0.1"), int(port)


def start_server(metrics: BrokerMetrics, host: str, port: int) -> tuple[Any, tuple[str, int]]:
    """Serve /metrics from a daemon thread; returns (server, bound (host, port)). server.shutdown() stops it."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    bound = server.server_address
    return server, (str(bound[0]), int(bound[1]))
