"""Serve the control app with uvicorn inside the caller's event loop, on owner-only Unix sockets.

uvicorn's own ``Server.serve`` is not used: it installs process-wide SIGINT/SIGTERM handlers (the daemon owns
those) and wakes up ten times a second. Instead each listener is a uvicorn ``Server`` driven through
``startup``/``shutdown`` from an anyio task, so the daemon's task group starts and cancels it like any other
task, and an idle control plane costs no wake-ups at all.

The sockets are bound by `supervisor.control._listen` (`serve` binds them itself; `serve_bound` serves
sockets bound earlier). It refuses peers running with ``no_new_privs`` (agents: see `_access`). The
operator's abstract socket, when given, has no file at all: only the uid check guards it, and Landlock's
scope keeps confined agents from connecting. If its name is taken (by a process that squats it), eyried
serves without it and says so.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import structlog
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.types import ASGIApp

from supervisor.control._access import (
    BearerTokenMiddleware,
    NoAgentsProtocol,
    OwnerOnlyProtocol,
    read_token_file,
)
from supervisor.control._header_timeout import HEADER_TIMEOUT, HeaderTimeoutProtocol
from supervisor.control._listen import BACKLOG, ControlSockets, TcpSettings, bind_control, shown
from supervisor.control.app import close_event_streams

__all__ = [
    "BACKLOG",
    "SHUTDOWN_GRACE",
    "Listening",
    "TcpSettings",
    "build_server",
    "serve",
    "serve_bound",
]

log = structlog.get_logger("supervisor.control")

SHUTDOWN_GRACE = 5.0
"""Seconds a listener gives requests in flight when it is cancelled."""


@dataclass(frozen=True)
class Listening:
    """Where `serve` accepts connections, handed to ``task_status.started``."""

    socket_path: Path
    tcp_address: tuple[str, int] | None = None
    abstract_socket: str | None = None


async def serve(
    app: Starlette,
    *,
    socket_path: Path,
    abstract_socket: str | None = None,
    tcp: TcpSettings | None = None,
    header_timeout: float = HEADER_TIMEOUT,
    task_status: TaskStatus[Listening] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until cancelled; then end event streams, finish requests in flight, remove the socket.

    A connection that has not sent a whole request head ``header_timeout`` seconds after it opened (or
    after its previous response) is closed.

    ``abstract_socket`` (``"\\0name"``) is the operator's abstract socket, served beside ``socket_path``.

    Run it in a task group: ``listening = await tg.start(functools.partial(serve, app, socket_path=...))``.
    """
    bound = bind_control(socket_path, abstract_socket=abstract_socket, tcp=tcp)
    await serve_bound(app, bound, header_timeout=header_timeout, task_status=task_status)


async def serve_bound(
    app: Starlette,
    bound: ControlSockets,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    task_status: TaskStatus[Listening] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """`serve` on sockets bound earlier (`bind_control`), which it closes when it ends."""
    listeners: list[tuple[uvicorn.Server, socket.socket]] = []
    try:
        tcp = bound.tcp_settings
        token = read_token_file(tcp.token_file) if tcp else None
        timeout = {"header_timeout": header_timeout}
        unix_protocol = type("UnixProtocol", (NoAgentsProtocol,), timeout)
        abstract_protocol = type("AbstractProtocol", (OwnerOnlyProtocol,), timeout)
        tcp_protocol = type("TcpProtocol", (HeaderTimeoutProtocol,), timeout)
        listeners.append((build_server(app, http=unix_protocol, lifespan="on"), bound.unix))
        if bound.abstract is not None:
            listeners.append((build_server(app, http=abstract_protocol, lifespan="off"), bound.abstract))
        if bound.tcp is not None and token is not None:
            tcp_app = BearerTokenMiddleware(app, token)
            listeners.append((build_server(tcp_app, http=tcp_protocol, lifespan="off"), bound.tcp))
        for server, sock in listeners:
            await server.startup(sockets=[sock])
        tcp_address = _address(bound.tcp) if bound.tcp is not None else None
        log.info(
            "control_listening",
            socket=str(bound.socket_path),
            abstract_socket=shown(bound.abstract_name) if bound.abstract_name else None,
            tcp=f"{tcp_address[0]}:{tcp_address[1]}" if tcp_address else None,
        )
        task_status.started(
            Listening(
                socket_path=bound.socket_path, tcp_address=tcp_address, abstract_socket=bound.abstract_name
            )
        )
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            close_event_streams(app)
            for server, sock in reversed(listeners):
                if server.started:
                    with anyio.move_on_after(SHUTDOWN_GRACE + 1):
                        await server.shutdown(sockets=[sock])
            bound.close()


def build_server(
    app: ASGIApp, *, lifespan: Literal["on", "off"], http: type[HeaderTimeoutProtocol]
) -> uvicorn.Server:
    """A uvicorn server for ``app`` that the caller drives (``startup``/``shutdown``): no signal handlers of
    its own, no access log, no headers that say what serves it."""
    config = uvicorn.Config(
        app,
        http=http,
        ws="none",
        lifespan=lifespan,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
        backlog=BACKLOG,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)  # what ``Server.serve`` would set before ``startup``
    return server


def _address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return str(host), int(port)
