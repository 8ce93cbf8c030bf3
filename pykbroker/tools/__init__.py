"""The command line's tools: config files and log format for `serve`; a small Kafka client and the
`topics`, `produce`, `consume` and `groups` commands built on pykbroker's own codec."""
