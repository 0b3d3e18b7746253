"""How eyriectl reaches eyried: the operator's abstract socket first, the socket file when that fails.

The abstract socket is the one a program running with ``no_new_privs`` (a systemd unit with
``NoNewPrivileges=yes``) may use; the socket file is for a daemon of an earlier release, or one in another
network namespace. An abstract name has no owner and no mode, so anyone may bind it while eyried is away:
a connection there counts only when the process listening is the one the home's pid file names. Anything
else is never sent a request.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import httpcore
import httpx

from supervisor.control._trust import listener_is_daemon

__all__ = ["OperatorTransport"]


class _OperatorBackend(httpcore.AnyIOBackend):
    """Connects to ``abstract`` when eyried serves it, else to the socket path the pool asks for."""

    def __init__(self, abstract: str, daemon_pid: Callable[[], int | None]) -> None:
        self.abstract = abstract
        self.daemon_pid = daemon_pid
        self.used: str | None = None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
            stream = await super().connect_unix_socket(self.abstract, timeout, socket_options)
            if self._served_by_daemon(stream):
                self.used = self.abstract
                return stream
            await stream.aclose()
        stream = await super().connect_unix_socket(path, timeout, socket_options)
        self.used = path
        return stream

    def _served_by_daemon(self, stream: httpcore.AsyncNetworkStream) -> bool:
        sock = stream.get_extra_info("socket")
        return sock is not None and listener_is_daemon(sock, self.daemon_pid())


class OperatorTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over the operator's sockets; `used` names the one the last connection went to."""

    def __init__(self, *, abstract: str, path: Path, daemon_pid: Callable[[], int | None]) -> None:
        # Plain HTTP over a Unix socket: no TLS ever happens, so no CA bundle is loaded (50 ms per command).
        super().__init__(uds=os.fspath(path), verify=False)
        self._backend = _OperatorBackend(abstract, daemon_pid)
        # httpx takes no network backend of its own: its pool is replaced by one that dials through ours.
        self._pool = httpcore.AsyncConnectionPool(uds=os.fspath(path), network_backend=self._backend)

    @property
    def used(self) -> str | None:
        """The socket path, or the abstract address (leading NUL), of the latest connection."""
        return self._backend.used
