"""A small synchronous reader of eyried's API for the commands that must answer at once (``ps``, ``list``,
``status``): HTTP/1.1 GET requests written and read by hand over the operator's Unix socket, returning the
JSON as it comes. It spares those commands httpx, anyio and pydantic, and ``http.client`` with the ``email``
package it loads (a quarter of ``eyriectl ps``'s imports; see bench/cli_bench.py and docs/decisions.md).

It dials exactly as `supervisor.client.ControlClient` does: the abstract socket first, kept only when the
process listening there is the pid in ``run/eyried.pid`` (`listener_is_daemon`), else the socket file.
Its errors are the same, built by the same functions (`supervisor.control._answers`,
`supervisor.daemon.absent`): no daemon is `DaemonNotRunning`, an error answer is the exception the daemon
raised.
"""

from __future__ import annotations

import json
import os
import socket
from types import TracebackType
from typing import Any, BinaryIO, Self

from supervisor.control._answers import (
    closed_without_answer,
    connect_failed,
    error_answer,
    no_answer_in_time,
    not_json,
)
from supervisor.control._error_answer import DETAILS_HEADER
from supervisor.control._trust import listener_is_daemon
from supervisor.daemon.lock import read_daemon_pid
from supervisor.paths import Home

__all__ = ["QuickClient"]


_TIMEOUT = 30.0
_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100


class _NoAnswer(Exception):
    """The answer ended early or is not HTTP/1.x."""


class _Answer:
    """One HTTP answer: status, reason, headers (names in lower case), body; ``last``: the server closes the
    connection after it."""

    def __init__(self, reader: BinaryIO) -> None:
        line = reader.readline(_MAX_HEADER_LINE)
        if not line:
            raise _NoAnswer("the connection closed without an answer")
        version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, self.reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _NoAnswer(f"not an HTTP answer: {line[:40]!r}")
        self.status = int(code)
        self.headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            field = reader.readline(_MAX_HEADER_LINE).decode("latin-1").rstrip("\r\n")
            if not field:
                break
            name, _, value = field.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        else:
            raise _NoAnswer("too many header lines")
        self.last = self.headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        self.body = self._body(reader)

    def _body(self, reader: BinaryIO) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return _chunks(reader)
        length = self.headers.get("content-length")
        if length is None:
            self.last = True
            return reader.read()
        body = reader.read(int(length))
        if len(body) != int(length):
            raise _NoAnswer("the answer ended early")
        return body


def _chunks(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int(reader.readline(_MAX_HEADER_LINE).split(b";")[0].strip() or b"x", 16)
        if size == 0:
            while reader.readline(_MAX_HEADER_LINE).strip():  # trailers
                pass
            return b"".join(parts)
        chunk = reader.read(size)
        if len(chunk) != size:
            raise _NoAnswer("the answer ended early")
        parts.append(chunk)
        reader.readline(_MAX_HEADER_LINE)


class _OperatorConnection:
    """An HTTP/1.1 connection to eyried over its operator sockets, opened at the first request and again
    after the server closed it."""

    def __init__(self, home: Home, timeout: float) -> None:
        self.home = home
        self.timeout = timeout
        self.used: str | None = None
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None

    def get(self, path: str) -> _Answer:
        if self._sock is None:
            self._sock = self._abstract() or self._socket_file()
            self._reader = self._sock.makefile("rb")
        assert self._reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: eyried\r\nAccept: application/json\r\n\r\n"
        try:
            self._sock.sendall(request.encode("ascii"))
            answer = _Answer(self._reader)
        except BaseException:
            self.close()
            raise
        if answer.last:
            self.close()
        return answer

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _abstract(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.home.operator_socket)
            if listener_is_daemon(sock, read_daemon_pid(self.home)):
                self.used = self.home.operator_socket
                return sock
        except OSError:
            pass
        sock.close()
        return None

    def _socket_file(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.home.socket_path))
        except TimeoutError:
            sock.close()
            raise no_answer_in_time(self.home.socket_path) from None
        except OSError as exc:
            sock.close()
            from supervisor.daemon.absent import daemon_not_running  # the unit's name: only when it is down

            raise connect_failed(self.home.socket_path, exc) or daemon_not_running(self.home) from None
        self.used = os.fspath(self.home.socket_path)
        return sock


class QuickClient:
    """``with QuickClient(home) as client: client.get("/v1/instances")``: GET requests on one connection."""

    def __init__(self, home: Home, *, timeout: float = _TIMEOUT) -> None:
        self.home = home
        self._connection = _OperatorConnection(home, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._connection.close()

    @property
    def socket_used(self) -> str | None:
        """The socket the connection went to, an abstract one shown as ``@name``; None before any."""
        used = self._connection.used
        return "@" + used.removeprefix("\0") if used and used.startswith("\0") else used

    def get(self, path: str) -> Any:
        """The JSON answer to ``GET path``; raises what the daemon's error answer stands for."""
        socket_path = self.home.socket_path
        try:
            answer = self._connection.get(path)
        except TimeoutError:
            raise no_answer_in_time(socket_path) from None
        except (_NoAnswer, ValueError, ConnectionError) as exc:
            raise closed_without_answer(socket_path, exc) from None
        if answer.status >= 400:
            details = answer.headers.get(DETAILS_HEADER.lower())
            headers = {DETAILS_HEADER: details} if details else {}
            raise error_answer(answer.status, answer.reason, answer.body, headers)
        try:
            return json.loads(answer.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise not_json("GET", path) from None
