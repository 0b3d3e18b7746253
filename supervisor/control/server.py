"""Serve the control app with uvicorn inside the caller's event loop, on owner-only Unix sockets.

uvicorn's own ``Server.serve`` is not used: it installs process-wide SIGINT/SIGTERM handlers (the daemon owns
those) and wakes up ten times a second. Instead each listener is a uvicorn ``Server`` driven through
``startup``/``shutdown`` from an anyio task, so the daemon's task group starts and cancels it like any other
task, and an idle control plane costs no wake-ups at all.

The pathname socket is bound under a temporary name, set to 0600 and renamed into place, so it is never
reachable with looser permissions, and a stale socket left by a crash is replaced atomically. It refuses
peers running with ``no_new_privs`` (agents: see `_access`). The operator's abstract socket, when given, has
no file at all: only the uid check guards it, and Landlock's scope keeps confined agents from connecting.
If its name is taken (by a process that squats it), eyried serves without it and says so.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import stat
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
from supervisor.control.app import close_event_streams
from supervisor.errors import EyrieError

__all__ = ["BACKLOG", "SHUTDOWN_GRACE", "Listening", "TcpSettings", "build_server", "serve"]

log = structlog.get_logger("supervisor.control")

_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
SHUTDOWN_GRACE = 5.0
"""Seconds a listener gives requests in flight when it is cancelled."""
BACKLOG = 128


@dataclass(frozen=True)
class TcpSettings:
    """The optional TCP listener: loopback only, every request needs the bearer token in ``token_file``.

    ``port`` 0 picks a free port (the bound address is reported by `serve`); ``localhost`` means 127.0.0.1.
    A missing token file is created with a random token, mode 0600.
    """

    port: int
    token_file: Path
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.host == "localhost":
            object.__setattr__(self, "host", "127.0.0.1")
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise EyrieError(
                f"control TCP host {self.host!r} is not a loopback address (use 127.0.0.1 or ::1)"
            )
        if not 0 <= self.port <= 65535:
            raise EyrieError(f"control TCP port {self.port} is out of range")


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
    token = read_token_file(tcp.token_file) if tcp else None
    unix_sock, inode = _bind_unix(socket_path)
    listeners: list[tuple[uvicorn.Server, socket.socket]] = []
    abstract_sock = None
    try:
        abstract_sock = _bind_abstract(abstract_socket) if abstract_socket else None
        tcp_sock = _bind_tcp(tcp) if tcp else None
        timeout = {"header_timeout": header_timeout}
        unix_protocol = type("UnixProtocol", (NoAgentsProtocol,), timeout)
        abstract_protocol = type("AbstractProtocol", (OwnerOnlyProtocol,), timeout)
        tcp_protocol = type("TcpProtocol", (HeaderTimeoutProtocol,), timeout)
        listeners.append((build_server(app, http=unix_protocol, lifespan="on"), unix_sock))
        if abstract_sock is not None:
            listeners.append((build_server(app, http=abstract_protocol, lifespan="off"), abstract_sock))
        if tcp_sock is not None and token is not None:
            tcp_app = BearerTokenMiddleware(app, token)
            listeners.append((build_server(tcp_app, http=tcp_protocol, lifespan="off"), tcp_sock))
        for server, sock in listeners:
            await server.startup(sockets=[sock])
        tcp_address = _address(tcp_sock) if tcp_sock is not None else None
        served_abstract = abstract_socket if abstract_sock is not None else None
        log.info(
            "control_listening",
            socket=str(socket_path),
            abstract_socket=_shown(served_abstract) if served_abstract else None,
            tcp=f"{tcp_address[0]}:{tcp_address[1]}" if tcp_address else None,
        )
        task_status.started(
            Listening(socket_path=socket_path, tcp_address=tcp_address, abstract_socket=served_abstract)
        )
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            close_event_streams(app)
            for server, sock in reversed(listeners):
                if server.started:
                    with anyio.move_on_after(SHUTDOWN_GRACE + 1):
                        await server.shutdown(sockets=[sock])
                sock.close()
            unix_sock.close()
            if abstract_sock is not None:
                abstract_sock.close()
            _unlink_if_ours(socket_path, inode)


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


def _bind_unix(path: Path) -> tuple[socket.socket, int]:
    """A listening socket at ``path``, mode 0600 in a 0700 directory; returns it and its inode."""
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise EyrieError(
            f"control socket path {path} is {len(os.fsencode(path))} bytes long; Unix sockets allow"
            f" {_SUN_PATH_MAX}: use a shorter home directory"
        )
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    with contextlib.suppress(FileNotFoundError):
        existing = path.lstat()
        if not stat.S_ISSOCK(existing.st_mode):
            raise EyrieError(f"{path} exists and is not a socket; move it away and start again")
        if _answers(path):
            raise EyrieError(f"another server is already listening on {path}")
    temp = directory / f".sock-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(temp))
        temp.chmod(0o600)
        inode = temp.stat().st_ino
        os.replace(temp, path)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return sock, inode


def _bind_abstract(name: str) -> socket.socket | None:
    """A listening socket on the abstract address ``name``, or None (logged) when another process holds it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise EyrieError(f"cannot listen on the abstract socket {_shown(name)}: {exc.strerror}") from None
        log.error(
            "operator_socket_taken",
            abstract_socket=_shown(name),
            hint="another process holds the name; eyriectl falls back to the socket file",
        )
        return None
    return sock


def _shown(name: str) -> str:
    """An abstract address as tools print it (``ss -x``): ``@`` for the leading NUL."""
    return "@" + name.removeprefix("\0")


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _bind_tcp(settings: TcpSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        return socket.create_server((settings.host, settings.port), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise EyrieError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None


def _address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def _unlink_if_ours(path: Path, inode: int) -> None:
    """Remove the socket file unless something else has replaced it meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        if path.lstat().st_ino == inode:
            path.unlink()
