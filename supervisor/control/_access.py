"""Who may talk to the control API: the owning uid on the Unix sockets, a bearer token on TCP.

File modes alone are not trusted for the socket: a loosened directory or socket mode must not open the API
to other users, so every accepted connection's peer uid is read with ``SO_PEERCRED`` and compared with ours.

Agents run as the owner's uid too. The abstract socket is out of a confined agent's reach (Landlock's scope
refuses the connect); the pathname socket is not (Landlock does not govern connecting to one), so there a
peer running with ``no_new_privs``, as every confined agent and its descendants do, is answered 403.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import socket
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from supervisor._fs import atomic_write
from supervisor.control._header_timeout import HeaderTimeoutProtocol
from supervisor.control._peer import peer_credentials, peer_no_new_privs
from supervisor.control.app import error_response
from supervisor.errors import EyrieError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "AGENT_REFUSAL",
    "BearerTokenMiddleware",
    "NoAgentsProtocol",
    "OwnerOnlyProtocol",
    "read_token_file",
]

log = structlog.get_logger("supervisor.control")


class OwnerOnlyProtocol(HeaderTimeoutProtocol):
    """uvicorn's h11 protocol (with a header deadline), closing any connection whose peer is not the
    daemon's own uid."""

    owner_uid = os.getuid()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        try:
            pid, uid, _ = peer_credentials(sock)
        except (OSError, AttributeError, struct.error) as exc:
            log.warning("control_connection_refused", reason=f"peer credentials unavailable: {exc}")
            transport.abort()
            return
        if uid != self.owner_uid:
            log.warning("control_connection_refused", peer_uid=uid, peer_pid=pid, owner_uid=self.owner_uid)
            transport.abort()
            return
        self.owner_connected(sock, pid, uid)

    def owner_connected(self, sock: socket.socket, pid: int, uid: int) -> None:
        """A peer of the owner's uid connected; a subclass may refuse it still."""


AGENT_REFUSAL = (
    "this process runs with no_new_privs set, as agents do (or could not be checked): the operator API"
    " refuses it on this socket."
    " Agents use the agent API ($EYRIE_URL); an operator's program with NoNewPrivileges= reaches eyried on"
    " its abstract socket (eyriectl tries that first)"
)


class NoAgentsProtocol(OwnerOnlyProtocol):
    """`OwnerOnlyProtocol` that answers every request 403 when the peer runs with ``no_new_privs``, or when
    that cannot be told: the operator's pathname socket, which Landlock cannot keep agents from."""

    def owner_connected(self, sock: socket.socket, pid: int, uid: int) -> None:
        no_new_privs = peer_no_new_privs(sock)
        if no_new_privs is False:
            return
        log.warning(
            "control_connection_refused",
            reason="no_new_privs" if no_new_privs else "peer process unknown",
            peer_pid=pid,
            peer_uid=uid,
        )
        self.app = _refuse_agent


async def _refuse_agent(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await error_response(AGENT_REFUSAL, "Forbidden", 403)(scope, receive, send)


def read_token_file(path: Path) -> bytes:
    """The bearer token in ``path``, created (0600, random) when missing; refused unless owner-only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, secrets.token_urlsafe(32) + "\n", mode=0o600)
        log.info("control_token_created", path=str(path))
    try:
        info = path.stat()
    except OSError as exc:
        raise EyrieError(f"cannot read the control token file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise EyrieError(f"control token file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise EyrieError(f"control token file {path} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & 0o077:
        raise EyrieError(
            f"control token file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
            f" run `chmod 600 {path}`"
        )
    token = path.read_bytes().strip()
    if not token:
        raise EyrieError(f"control token file {path} is empty")
    return token


class BearerTokenMiddleware:
    """Answer 401 unless the request carries ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: bytes) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            response = error_response(
                "missing or invalid bearer token", "Unauthorized", 401, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)
        return False
