"""Command line: `pykbroker [serve] [--listen HOST:PORT] [--data-dir DIR] [--set key=value ...]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Sequence

import trio

from .broker import Broker
from .config import BrokerConfig, ConfigError

log = logging.getLogger("pykbroker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pykbroker", description="A Kafka-compatible broker for local development and CI.")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the broker (the default command)")
    for p in (parser, serve):
        p.add_argument("--listen", default=None, help="HOST:PORT to listen on (default 127.0.0.1:9092; port 0 picks one)")
        p.add_argument("--advertise", default=None, help="HOST:PORT clients are told to use (default: the listen address)")
        p.add_argument("--data-dir", default=None, help="where the logs live (Kafka's log.dirs; default ./pykbroker-data)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="a Kafka broker config, e.g. --set num.partitions=3 (repeatable)")
        p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    raw: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        raw[key.strip()] = value
    if args.listen:
        raw["listeners"] = f"PLAINTEXT://{args.listen}"
    if args.advertise:
        raw["advertised.listeners"] = f"PLAINTEXT://{args.advertise}"
    if args.data_dir:
        raw["log.dirs"] = args.data_dir
    return BrokerConfig.from_mapping(raw)


async def serve(config: BrokerConfig) -> None:
    broker = Broker(config)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(broker.run)
        print(f"pykbroker ready: listening on {host}:{port}, data in {config.data_dir.resolve()}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except ConfigError as e:
        print(f"pykbroker: configuration error: {e}", file=sys.stderr)
        return 2
    trio.run(serve, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
