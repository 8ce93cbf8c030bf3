"""A Kafka compatibility suite: real clients x features against any Kafka-compatible broker.

    python -m compat HOST:PORT [--json] [--only PATTERN] [--timeout S] [--allow FILE]

`main(argv) -> int` is the same command for embedding (e.g. a `pykbroker compat` subcommand).
"""

from .cli import main

__all__ = ["main"]
