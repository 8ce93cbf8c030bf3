"""`pykbroker cluster`: a local ZooKeeper and N brokers on loopback, for development; Ctrl-C stops them all.

Each broker is `python -m pykbroker serve` with broker.id N, its own data dir (DIR/broker-N) and
zookeeper.connect pointing at the local ZooKeeper under the chroot /pykbroker; ZooKeeper keeps its
data in DIR/zookeeper, so a cluster stopped and started again on the same DIR keeps its topics.
Brokers are stopped with SIGTERM (a controlled shutdown), ZooKeeper last.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .pipes import readable_within
from .zookeeper import ZooKeeperError, zookeeper_server

READY_TIMEOUT_S = 60
CHROOT = "/pykbroker"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("cluster", help="run a local ZooKeeper and N brokers (development)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokers", type=int, default=3, metavar="N", help="how many brokers (default 3)")
    p.add_argument("--data-dir", default="./pykbroker-cluster", metavar="DIR",
                   help="ZooKeeper's and the brokers' data (default ./pykbroker-cluster)")
    p.add_argument("--base-port", type=int, default=9092, metavar="PORT",
                   help="broker N listens on PORT+N-1 (default 9092; 0 picks free ports)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a broker config for every broker (repeatable), e.g. --set min.insync.replicas=2")


def _start_broker(broker_id: int, port: int, data: Path, zk_connect: str, settings: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "pykbroker", "serve", "--listen", f"127.0.0.1:{port}",
               "--data-dir", str(data / f"broker-{broker_id}"), "--set", f"broker.id={broker_id}",
               "--set", f"zookeeper.connect={zk_connect}{CHROOT}"]
    for item in settings:
        command += ["--set", item]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready = readable_within(proc.stdout, READY_TIMEOUT_S)
    line = proc.stdout.readline().decode() if ready else ""
    if "pykbroker ready" not in line:
        proc.kill()
        raise RuntimeError(f"broker {broker_id} did not start: {line.strip() or 'no ready line'}")
    address = line.split("listening on ", 1)[1].split(",", 1)[0]
    return proc, address


def run(args: argparse.Namespace) -> int:
    data = Path(args.data_dir)
    (data / "zookeeper").mkdir(parents=True, exist_ok=True)
    brokers: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with zookeeper_server(data / "zookeeper") as zk:
            try:
                addresses = []
                for broker_id in range(1, args.brokers + 1):
                    port = args.base_port + broker_id - 1 if args.base_port else 0
                    proc, address = _start_broker(broker_id, port, data, zk.connect, args.set)
                    brokers.append(proc)
                    addresses.append(address)
                print(f"pykbroker cluster ready: bootstrap {','.join(addresses)} "
                      f"(ZooKeeper {zk.connect}{CHROOT}, data in {data.resolve()})", flush=True)
                while not stop.wait(0.5):
                    if any(p.poll() is not None for p in brokers):
                        print("pykbroker cluster: a broker exited; stopping the others", file=sys.stderr)
                        break
            finally:
                _stop(brokers)  # before ZooKeeper, so that their controlled shutdowns can write to it
    except (ZooKeeperError, RuntimeError) as e:
        print(f"pykbroker cluster: {e}", file=sys.stderr)
        return 1
    return 0


def _stop(brokers: list[subprocess.Popen[bytes]]) -> None:
    for p in brokers:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in brokers:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
