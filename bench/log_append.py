"""Partition-log speed, run by hand:  python bench/log_append.py [--dir DIR] [--mib 512]

Prints:
* append throughput for ~1 MiB batches of 1 KiB records (page cache, no fsync),
  and with an fsync per append (flush.messages=1) on a smaller volume;
* append rate for small (1 record, 100 B) batches, i.e. the per-call overhead;
* read throughput, consumer-style (1 MiB and 50 MiB max_bytes, sequential);
* recovery time of a 256 MiB active segment after a crash (full CRC scan,
  index rebuild) and the open time after a clean shutdown.

Uses a temporary directory (on the same disk as /tmp unless --dir is given).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from pykbroker.log import LogConfig, PartitionLog
from pykbroker.protocol.records import Record, build_batch

MIB = 1 << 20


def big_batch(codec: int = 0) -> bytes:
    value = os.urandom(1024 - 20)
    recs = [Record(offset_delta=i, timestamp_delta=i, key=b"key-%06d" % i, value=value) for i in range(1000)]
    return build_batch(recs, base_timestamp=int(time.time() * 1000), compression=codec)


def fill(log: PartitionLog, data: bytes, total_bytes: int) -> tuple[float, int]:
    n = max(1, total_bytes // len(data))
    t = time.perf_counter()
    for _ in range(n):
        log.append(data)
    return time.perf_counter() - t, n * len(data)


def bench_append(root: Path, mib: int) -> None:
    data = big_batch()
    log = PartitionLog.open(root / "append-0", LogConfig(), fsync=False)
    fill(log, data, 16 * MIB)  # warm up
    secs, nbytes = fill(log, data, mib * MIB)
    print(f"append, {len(data) / MIB:.2f} MiB batches of 1 KiB records, page cache: "
          f"{nbytes / MIB / secs:8.1f} MiB/s  ({nbytes // len(data) / secs:,.0f} batches/s, {mib} MiB)")
    log.close()
    shutil.rmtree(root / "append-0")

    log = PartitionLog.open(root / "fsync-0", LogConfig.from_kafka_configs({"flush.messages": "1"}), fsync=True)
    secs, nbytes = fill(log, data, 64 * MIB)
    print(f"append, same batches, fsync every append (flush.messages=1):   "
          f"{nbytes / MIB / secs:8.1f} MiB/s  ({nbytes // len(data) / secs:,.0f} fsyncs/s)")
    log.close()
    shutil.rmtree(root / "fsync-0")

    small = build_batch([Record(value=b"x" * 100)], base_timestamp=int(time.time() * 1000))
    log = PartitionLog.open(root / "small-0", LogConfig(), fsync=False)
    n = 100_000
    t = time.perf_counter()
    for _ in range(n):
        log.append(small)
    secs = time.perf_counter() - t
    print(f"append, 1-record {len(small)} B batches:                         "
          f"{n / secs:8,.0f} appends/s  ({secs / n * 1e6:.1f} us each)")
    log.close()
    shutil.rmtree(root / "small-0")


def bench_read_and_recovery(root: Path) -> None:
    data = big_batch()
    d = root / "read-0"
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    fill(log, data, 256 * MIB)
    total = log.size_in_bytes
    for max_bytes in (MIB, 50 * MIB):
        offset, nbytes = 0, 0
        t = time.perf_counter()
        while offset < log.log_end_offset:
            r = log.read(offset, max_bytes)
            nbytes += len(r.records)
            offset = r.next_offset
        secs = time.perf_counter() - t
        print(f"read, sequential, max_bytes={max_bytes // MIB:>2} MiB:                          "
              f"{nbytes / MIB / secs:8.1f} MiB/s")
    t = time.perf_counter()
    n = 2000
    step = max(1, log.log_end_offset // n)
    for i in range(n):
        log.read(i * step, MIB)
    secs = time.perf_counter() - t
    print(f"read, random offsets, 1 MiB each:                              {n / secs:8,.0f} reads/s")
    leo = log.log_end_offset

    log.close_handles()  # crash: no clean-shutdown marker
    t = time.perf_counter()
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    secs = time.perf_counter() - t
    assert log.log_end_offset == leo and log.rebuilt_segments == [0]
    print(f"recovery after crash, {total / MIB:.0f} MiB active segment (CRC + index rebuild): "
          f"{secs * 1000:8.1f} ms  ({total / MIB / secs:.0f} MiB/s)")
    log.close()
    t = time.perf_counter()
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    secs = time.perf_counter() - t
    assert log.log_end_offset == leo and log.rebuilt_segments == []
    print(f"open after clean shutdown, same log:                           {secs * 1000:8.1f} ms")
    log.close()

    small = build_batch([Record(value=b"x" * 100)], base_timestamp=int(time.time() * 1000))
    d2 = root / "small-rec-0"
    log = PartitionLog.open(d2, LogConfig(), fsync=False)
    while log.size_in_bytes < 64 * MIB:
        for _ in range(10_000):
            log.append(small)
    size = log.size_in_bytes
    offset, nbytes = 0, 0
    t = time.perf_counter()
    while offset < log.log_end_offset:
        r = log.read(offset, MIB)
        nbytes += len(r.records)
        offset = r.next_offset
    secs = time.perf_counter() - t
    print(f"read, sequential, max_bytes= 1 MiB, {len(small)} B batches:              "
          f"{nbytes / MIB / secs:8.1f} MiB/s")
    log.close_handles()
    t = time.perf_counter()
    log = PartitionLog.open(d2, LogConfig(), fsync=False)
    secs = time.perf_counter() - t
    print(f"recovery after crash, {size / MIB:.0f} MiB of {len(small)} B batches:               "
          f"{secs * 1000:8.1f} ms  ({size / len(small) / secs:,.0f} batches/s)")
    log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    p.add_argument("--mib", type=int, default=512, help="MiB to append in the page-cache append test")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pykbroker-bench-", dir=args.dir))
    try:
        bench_append(root, args.mib)
        bench_read_and_recovery(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
