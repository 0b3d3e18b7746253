"""The control API's listening sockets, bound apart from serving them.

Binding needs sockets only; serving them imports the HTTP stack (`supervisor.control.server`). eyried binds
first and may serve later (see `supervisor.daemon._listeners`): a request that arrives meanwhile waits in the
socket's backlog instead of being refused by a stale socket file.

The pathname socket is bound under a temporary name, set to 0600 and renamed into place, so it is never
reachable with looser permissions, and a stale socket left by a crash is replaced atomically.
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

import structlog

from supervisor.errors import EyrieError

__all__ = ["BACKLOG", "ControlSockets", "TcpSettings", "bind_control", "shown"]

log = structlog.get_logger("supervisor.control")

_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
BACKLOG = 128


@dataclass(eq=False)
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


@dataclass(eq=False)
class ControlSockets:
    """The bound, listening sockets of the control API: the socket file, the operator's abstract socket
    (None when not asked for or taken by another process) and the TCP listener (None when not asked for)."""

    socket_path: Path
    unix: socket.socket
    inode: int
    tcp_settings: TcpSettings | None = None
    abstract_name: str | None = None
    abstract: socket.socket | None = None
    tcp: socket.socket | None = None

    def close(self) -> None:
        """Close every socket and remove the socket file unless something else has replaced it."""
        for sock in (self.tcp, self.abstract, self.unix):
            if sock is not None:
                sock.close()
        with contextlib.suppress(FileNotFoundError):
            if self.socket_path.lstat().st_ino == self.inode:
                self.socket_path.unlink()


def bind_control(
    socket_path: Path, *, abstract_socket: str | None = None, tcp: TcpSettings | None = None
) -> ControlSockets:
    """Bind and listen on ``socket_path``, the abstract socket ``abstract_socket`` (``"\\0name"``) and the
    TCP listener ``tcp`` asks for; on an error nothing stays bound."""
    unix, inode = _bind_unix(socket_path)
    bound = ControlSockets(socket_path, unix, inode, tcp_settings=tcp)
    try:
        if abstract_socket:
            bound.abstract = _bind_abstract(abstract_socket)
            bound.abstract_name = abstract_socket if bound.abstract is not None else None
        if tcp is not None:
            bound.tcp = _bind_tcp(tcp)
    except BaseException:
        bound.close()
        raise
    return bound


def shown(name: str) -> str:
    """An abstract address as tools print it (``ss -x``): ``@`` for the leading NUL."""
    return "@" + name.removeprefix("\0")


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
            raise EyrieError(f"cannot listen on the abstract socket {shown(name)}: {exc.strerror}") from None
        log.error(
            "operator_socket_taken",
            abstract_socket=shown(name),
            hint="another process holds the name; eyriectl falls back to the socket file",
        )
        return None
    return sock


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
