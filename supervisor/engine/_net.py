"""The smallest TCP connect and HTTP status check the probes need, on raw non-blocking sockets.

A health check only needs a status line; a full HTTP client costs more per request than the request itself
when hundreds of instances are probed (see ``bench/engine_bench.py --probe-cost``).
"""

from __future__ import annotations

import errno
import os
import re
import socket

import anyio

__all__ = ["HTTPProbeError", "connect", "http_status"]

_MAX_RESPONSE = 64 << 10
_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class HTTPProbeError(Exception):
    """The peer answered something that is not an HTTP response."""


async def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A connected non-blocking socket; OSError (e.g. ECONNREFUSED) when nobody listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err == errno.EINPROGRESS:
            await anyio.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return sock
    except BaseException:
        sock.close()
        raise


async def _send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await anyio.wait_writable(sock)
            continue
        view = view[sent:]


def _complete(buf: bytes | bytearray) -> bool:
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    m = _LENGTH.search(buf, 0, head_end + 2)
    return m is not None and len(buf) >= head_end + 4 + int(m.group(1))


async def http_status(port: int, path: str, host: str = "127.0.0.1") -> int:
    """``GET path`` on ``host:port`` and return the response status code."""
    sock = await connect(port, host)
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: eyried-probe\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        )
        await _send_all(sock, request.encode("ascii", errors="replace"))
        buf = bytearray()
        while len(buf) < _MAX_RESPONSE and not _complete(buf):
            try:
                chunk = sock.recv(_MAX_RESPONSE)
            except BlockingIOError:
                await anyio.wait_readable(sock)
                continue
            if not chunk:
                break
            buf += chunk
    finally:
        sock.close()
    m = _STATUS.match(buf)
    if m is None:
        first = bytes(buf[:40]).decode(errors="replace") or "nothing"
        raise HTTPProbeError(f"not an HTTP response: {first!r}")
    return int(m.group(1))
