"""Sending a response frame: its bytes with send_all, and its file-backed records with sendfile.

The records of a fetch stay in the segment files (see ``log.file_records``): the kernel copies them
to the socket, so a response costs the broker its headers in memory whatever its size, and a client
that stops reading pins no record bytes at all — only open file descriptors, closed when the send
ends or the connection does.
"""

from __future__ import annotations

import os
from typing import Any

import trio

from ..protocol.primitives import OutFrame


async def send_response(stream: trio.SocketStream, frame: OutFrame | bytes | bytearray) -> int:
    """Send one frame; returns the bytes sent. Holes are sent from their files (and closed)."""
    holes = getattr(frame, "holes", None)
    if not holes:
        await stream.send_all(frame)
        return len(frame)
    view = memoryview(frame)
    sent = 0
    pos = 0
    try:
        for at, value in holes:
            await stream.send_all(view[pos:at])
            sent += at - pos
            pos = at
            sent += await _send_file_records(stream, value)
        await stream.send_all(view[pos:])
        sent += len(view) - pos
    finally:
        view.release()
        for _, value in holes:
            value.close()
    return sent


async def _send_file_records(stream: trio.SocketStream, value: Any) -> int:
    sock = stream.socket
    out_fd = sock.fileno()
    progress = getattr(stream, "note_progress", None)
    total = 0
    for r in value.ranges:
        offset, remaining = r.position, r.size
        while remaining:
            try:
                n = os.sendfile(out_fd, r.fd, offset, remaining)
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as e:
                if e.errno in (22, 95):  # EINVAL / EOPNOTSUPP: this file or socket can't sendfile
                    data = os.pread(r.fd, remaining, offset)
                    await stream.send_all(data)
                    n = len(data)
                else:
                    raise
            if n == 0:
                # The file is shorter than the length already announced: the frame can't be completed.
                raise trio.BrokenResourceError(f"segment file ended {remaining} bytes early while sending")
            offset += n
            remaining -= n
            total += n
            if progress is not None:
                progress()
        await trio.sleep(0)  # let other connections run between ranges of a large response
    return total
