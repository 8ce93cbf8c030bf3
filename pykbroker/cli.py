"""Command line: `pykbroker [serve] ...` runs the broker; `topics`, `produce`, `consume`, `groups` and
`transactions` are small Kafka tools (pykbroker/tools/) that talk to a broker with pykbroker's own codec.

This module only parses arguments and dispatches; `pykbroker COMMAND --help` documents each command.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .config import BrokerConfig, ConfigError
from .tools.client import ToolError
from .tools.logfmt import FORMATS, LEVELS, setup_logging

if TYPE_CHECKING:
    from .log.errors import StartupError

log = logging.getLogger("pykbroker")

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
Formatter = argparse.RawDescriptionHelpFormatter


# ---------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pykbroker", formatter_class=Formatter,
        description="A Kafka-compatible broker for local development and CI, and small Kafka tools.",
        epilog="Without a command, pykbroker serves (the options above are serve's).\n"
               "`pykbroker COMMAND --help` describes each command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the broker (the default command)", formatter_class=Formatter,
                           description="Run the broker until SIGINT/SIGTERM. Prints one line on stdout once it "
                                       "listens:\n  pykbroker ready: listening on HOST:PORT, data in DIR"
                                       "[, metrics on http://HOST:PORT/metrics]\nLogs go to stderr.",
                           epilog="Settings are Kafka broker config names. Precedence: --config FILE, then --set, "
                                  "then --listen/--advertise/--data-dir.\nAn unknown key or a bad value stops "
                                  "start-up with a message naming the key (exit status 2).")
    _serve_options(parser, argparse.SUPPRESS)
    _serve_options(serve, argparse.SUPPRESS)
    _topics_parser(sub)
    _produce_parser(sub)
    _consume_parser(sub)
    _groups_parser(sub)
    _transactions_parser(sub)
    from .tools import local_cluster
    local_cluster.add_parser(sub)
    return parser


def _serve_options(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--listen", default=default, metavar="HOST:PORT",
                   help="where to listen (default 127.0.0.1:9092; port 0 picks a free port)")
    p.add_argument("--advertise", default=default, metavar="HOST:PORT",
                   help="address clients are told to use (default: the listen address)")
    p.add_argument("--data-dir", default=default, metavar="DIR",
                   help="where the logs live (Kafka's log.dirs; default ./pykbroker-data)")
    p.add_argument("--config", default=default, metavar="FILE",
                   help="broker settings from a Kafka server.properties file, or TOML if FILE ends in .toml")
    p.add_argument("--set", action="append", default=default, metavar="KEY=VALUE",
                   help="a Kafka broker config, e.g. --set num.partitions=3 (repeatable; overrides --config)")
    p.add_argument("--metrics", default=default, metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (off by default; port 0 picks one)")
    p.add_argument("--log-level", default=default, type=str.upper, choices=LEVELS, help="default INFO")
    p.add_argument("--log-format", default=default, choices=FORMATS,
                   help="text (default): 'TIME LEVEL LOGGER message'; json: one object per line")


def _client_options(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--bootstrap and --request-timeout-ms, accepted before and after a sub-action."""
    p.add_argument("--bootstrap", "-b", metavar="HOST:PORT",
                   default=argparse.SUPPRESS if suppress else DEFAULT_BOOTSTRAP,
                   help=f"the broker to talk to (default {DEFAULT_BOOTSTRAP})")
    p.add_argument("--request-timeout-ms", dest="timeout_ms", type=int, metavar="MS",
                   default=argparse.SUPPRESS if suppress else 30000,
                   help="give up on a broker answer after this long (default 30000)")


def _action(sub: Any, name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=description or help_text,
                                                formatter_class=Formatter)
    _client_options(p, suppress=True)
    return p


def _topics_parser(sub: Any) -> None:
    p = sub.add_parser("topics", help="list, create, delete or describe topics", formatter_class=Formatter,
                       description="List, create, delete or describe topics (like kafka-topics.sh).",
                       epilog="examples:\n  pykbroker topics list\n"
                              "  pykbroker topics create orders --partitions 3 --config retention.ms=3600000\n"
                              "  pykbroker topics describe orders\n  pykbroker topics delete orders")
    _client_options(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = _action(actions, "list", "print topic names, one a line")
    ls.add_argument("--exclude-internal", action="store_true", help="leave out internal topics (__consumer_offsets)")
    create = _action(actions, "create", "create a topic")
    create.add_argument("name", help="topic name")
    create.add_argument("--partitions", type=int, default=-1, metavar="N",
                        help="number of partitions (default: the broker's num.partitions)")
    create.add_argument("--replication-factor", type=int, default=-1, metavar="N",
                        help="replication factor (default: the broker's; pykbroker has one node)")
    create.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a topic config, e.g. --config retention.ms=60000 (repeatable)")
    create.add_argument("--if-not-exists", action="store_true", help="succeed if the topic exists already")
    delete = _action(actions, "delete", "delete a topic and its data")
    delete.add_argument("name", help="topic name")
    delete.add_argument("--if-exists", action="store_true", help="succeed if there is no such topic")
    describe = _action(actions, "describe", "show topics' ids, partitions, leaders and log start/end offsets",
                       "Show topics' ids, partitions, leaders and log start/end offsets (all topics without NAME).")
    describe.add_argument("names", nargs="*", metavar="NAME", help="topic name(s); all topics when none")
    describe.add_argument("--exclude-internal", action="store_true", help="leave out internal topics")


def _produce_parser(sub: Any) -> None:
    p = sub.add_parser(
        "produce", help="send stdin lines as records", formatter_class=Formatter,
        description="Send one record per line of stdin (like kafka-console-producer.sh or kcat -P).\n"
                    "A topic that does not exist is created if the broker auto-creates topics.\n"
                    "Keyed records go to the partition Kafka's Java client would pick (murmur2 of the key).",
        epilog="example:\n  printf 'k1:hello\\nk2:world\\n' | pykbroker produce --topic t --key-separator : "
               "--header source=cli")
    _client_options(p)
    p.add_argument("--topic", "-t", required=True, help="topic to write to")
    p.add_argument("--key-separator", "-K", metavar="SEP",
                   help="split each line at the first SEP into key and value (default: no key)")
    p.add_argument("--header", "-H", action="append", default=[], metavar="KEY=VALUE",
                   help="a header for every record (repeatable; KEY alone gives a null value)")
    p.add_argument("--partition", "-p", type=int, metavar="P", help="write every record to partition P")
    p.add_argument("--acks", type=int, default=-1, choices=(-1, 0, 1), help="acks of the produce requests (default -1)")
    p.add_argument("--batch-size", type=int, default=1000, metavar="N", help="records per batch at most (default 1000)")
    p.add_argument("--linger-ms", type=int, default=100, metavar="MS",
                   help="send what was read once stdin has been quiet this long (default 100)")
    p.add_argument("--verbose", "-v", action="store_true", help="say on stderr how many records were sent")


def _consume_parser(sub: Any) -> None:
    from .tools.consume import FIELDS
    fields = "\n".join(f"  %{k}  {v}" for k, v in FIELDS.items())
    p = sub.add_parser(
        "consume", help="print a topic's records to stdout", formatter_class=Formatter,
        description="Print records to stdout, one line each (like kafka-console-consumer.sh or kcat -C).\n"
                    "Runs until --max-messages, --timeout-ms or Ctrl-C, then prints\n"
                    "'Processed a total of N messages' on stderr.\n\n"
                    "With --group G: starts at G's committed offsets (partitions without one start as\n"
                    "without a group) and commits how far it got when it stops, with a simple commit\n"
                    "(generation -1). It does not join the group: it reads every partition, and the\n"
                    "commit is refused while other consumers are active members of G.",
        epilog=f"--format fields (\\n, \\t and %% are escapes; a newline ends each record):\n{fields}\n"
               "null keys and values print as nothing.\n\nexample:\n"
               "  pykbroker consume --topic t --from-beginning --max-messages 10 --format '%k %v'")
    _client_options(p)
    p.add_argument("--topic", "-t", required=True, help="topic to read")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the earliest offset (default: the end), where no committed offset applies")
    p.add_argument("--max-messages", type=int, metavar="N", help="stop after N records")
    p.add_argument("--timeout-ms", dest="idle_timeout_ms", type=int, metavar="MS",
                   help="stop when no record arrived for this long (default: wait forever)")
    p.add_argument("--group", "-g", metavar="G", help="start from and commit to consumer group G's offsets")
    p.add_argument("--partition", "-p", type=int, metavar="P", help="read only partition P")
    p.add_argument("--format", "-f", default="%v", metavar="FMT", help="output of each record (default '%%v')")


def _groups_parser(sub: Any) -> None:
    p = sub.add_parser("groups", help="list consumer groups or show their offsets and lag", formatter_class=Formatter,
                       description="List consumer groups, or show a group's members, committed offsets, log end "
                                   "offsets and lag (like kafka-consumer-groups.sh).",
                       epilog="examples:\n  pykbroker groups list\n  pykbroker groups describe my-group")
    _client_options(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    _action(actions, "list", "print a table of groups: GROUP STATE PROTOCOL-TYPE")
    describe = _action(actions, "describe", "show a group's state and, per partition, committed offset, "
                                            "log end offset, lag and owning member",
                       "Show a group's state, then a table with one row per partition the group has a committed "
                       "offset for or a member is assigned:\n  " + " ".join(
                           ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                            "HOST", "CLIENT-ID")) + "\n'-' where there is no value (e.g. no committed offset).")
    describe.add_argument("group", help="group id")


def _transactions_parser(sub: Any) -> None:
    p = sub.add_parser("transactions", help="list transactions or show one", formatter_class=Formatter,
                       description="List the transactional ids the coordinator knows, or show one transaction's "
                                   "producer, state and partitions (like kafka-transactions.sh).",
                       epilog="examples:\n  pykbroker transactions list\n  pykbroker transactions list --state Ongoing\n"
                              "  pykbroker transactions describe my-txn-id")
    _client_options(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = _action(actions, "list", "print a table: TRANSACTIONAL-ID COORDINATOR PRODUCER-ID STATE")
    listing.add_argument("--state", action="append", metavar="STATE",
                         help="only transactions in this state (Ongoing, PrepareCommit, CompleteAbort...); repeatable")
    describe = _action(actions, "describe", "show one transaction: producer id and epoch, state, timeout, start "
                                            "time, duration and partitions")
    describe.add_argument("transactional_id", help="the producer's transactional.id")


# ---------------------------------------------------------------------------- serve

def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    raw: dict[str, str] = {}
    config_file = getattr(args, "config", None)
    if config_file:
        from .tools.config_file import load_config_file
        raw.update(load_config_file(config_file))
    file_keys, set_keys = set(raw), set()
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        raw[key.strip()] = value
        set_keys.add(key.strip())
    if getattr(args, "listen", None):
        raw["listeners"] = f"PLAINTEXT://{args.listen}"
    if getattr(args, "advertise", None):
        raw["advertised.listeners"] = f"PLAINTEXT://{args.advertise}"
    if getattr(args, "data_dir", None):
        raw["log.dirs"] = args.data_dir
    try:
        return BrokerConfig.from_mapping(raw)
    except ConfigError as e:
        if config_file and _names_any(str(e), file_keys - set_keys):
            raise ConfigError(f"{config_file}: {e}") from None
        raise


def _names_any(message: str, keys: set[str]) -> bool:
    """Whether a ConfigError message is about one of `keys` (to say which file it came from)."""
    about = message.split("; did you mean")[0]
    return any(re.search(rf"(?<![\w.]){re.escape(k)}(?![\w.])", about) for k in keys)


async def serve(config: BrokerConfig, metrics_address: tuple[str, int] | None = None) -> None:
    import trio  # here, not at the top: the client commands start faster without trio and the broker

    from .broker import Broker
    broker = Broker(config)
    metrics_server = None
    try:
        extra = ""
        if metrics_address is not None:
            from .metrics import BrokerMetrics, start_server
            metrics = BrokerMetrics()
            metrics.watch(broker, trio.lowlevel.current_trio_token())
            metrics_server, (mhost, mport) = start_server(metrics, *metrics_address)
            extra = f", metrics on http://{mhost}:{mport}/metrics"
        # The signal receiver is open before "ready" is printed: a SIGTERM sent on seeing that line
        # is a clean shutdown, never the default handler's abrupt exit.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(broker.run)
                print(f"pykbroker ready: listening on {host}:{port}, data in {config.data_dir.resolve()}{extra}",
                      flush=True)
                async for signum in signals:
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    if broker.cluster is not None:
                        await broker.cluster.controlled_shutdown()
                    nursery.cancel_scope.cancel()
                    break
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        broker.close()  # run() closes the logs; this is for a start that failed before it ran


def run_serve(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", None) or "INFO", getattr(args, "log_format", None) or "text")
    try:
        config = config_from_args(args)
        metrics_address = None
        if getattr(args, "metrics", None):
            from .metrics import parse_address
            metrics_address = parse_address(args.metrics)
        if config.data_dir.exists() and not config.data_dir.is_dir():
            raise ConfigError(f"log.dirs {str(config.data_dir)!r} is not a directory")
    except ConfigError as e:
        print(f"pykbroker: configuration error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"pykbroker: --metrics needs the prometheus-client package ({e})", file=sys.stderr)
        return 2
    if config.ignored:
        log.warning("accepted without effect in pykbroker (Kafka configs it does not implement): %s",
                    ", ".join(config.ignored))
    import trio
    try:
        trio.run(serve, config, metrics_address)
    except BaseException as e:  # noqa: BLE001 - narrowed below
        error = _startup_error(e)
        if error is None:
            raise
        print(f"pykbroker: cannot start: {error}", file=sys.stderr)
        return 1 if isinstance(error, OSError) else 2
    return 0


def _startup_error(e: BaseException) -> OSError | StartupError | None:
    """An OSError (address in use, permission denied...) or a data directory the broker refuses
    to serve (StartupError, exit 2), possibly inside trio's exception groups."""
    from .log.errors import StartupError
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e if isinstance(e, (OSError, StartupError)) else None


# ---------------------------------------------------------------------------- dispatch

def _tool(command: str) -> Callable[[argparse.Namespace], int]:
    if command == "topics":
        from .tools import topics
        return topics.run
    if command == "produce":
        from .tools import produce
        return produce.run
    if command == "consume":
        from .tools import consume
        return consume.run
    if command == "transactions":
        from .tools import transactions
        return transactions.run
    if command == "cluster":
        from .tools import local_cluster
        return local_cluster.run
    from .tools import groups
    return groups.run


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    if command == "serve":
        return run_serve(args)
    try:
        return _tool(command)(args)
    except ToolError as e:
        print(f"pykbroker {command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
