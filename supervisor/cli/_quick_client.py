"""A small synchronous reader of eyried's API for the commands that must answer at once (``ps``, ``list``,
``status``): the standard library's ``http.client`` over the operator's Unix socket, returning the JSON as
it comes. It spares those commands httpx, anyio and pydantic, most of their start-up (see bench/cli_bench.py
and docs/decisions.md).

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
import sys

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

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Self

    from supervisor.paths import Home

__all__ = ["QuickClient"]


def _import_http_client_without_tls() -> None:
    """Import ``http.client`` with ``ssl`` held absent, as on a Python built without it: it loads ssl only to
    offer HTTPS, about a twentieth of ``eyriectl ps``, and a Unix socket never needs it. Only the first
    import is shaped so (an interpreter that has loaded either already keeps what it has); ssl itself stays
    importable afterwards."""
    if "http.client" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # the documented way to make an import fail
    try:
        import http.client  # noqa: F401
    finally:
        del sys.modules["ssl"]


_import_http_client_without_tls()
import http.client  # noqa: E402

_TIMEOUT = 30.0


class _OperatorConnection(http.client.HTTPConnection):
    """An HTTP/1.1 connection to eyried over its operator sockets."""

    def __init__(self, home: Home, timeout: float) -> None:
        super().__init__("eyried", timeout=timeout)
        self.home = home
        self.used: str | None = None

    def connect(self) -> None:
        self.sock = self._abstract() or self._socket_file()

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
            self._connection.request("GET", path, headers={"Accept": "application/json"})
            response = self._connection.getresponse()
            content = response.read()
        except TimeoutError:
            raise no_answer_in_time(socket_path) from None
        except (http.client.HTTPException, ConnectionError) as exc:
            raise closed_without_answer(socket_path, exc) from None
        if response.status >= 400:
            details = response.getheader(DETAILS_HEADER)
            headers = {DETAILS_HEADER: details} if details else {}
            raise error_answer(response.status, response.reason, content, headers)
        try:
            return json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise not_json("GET", path) from None
