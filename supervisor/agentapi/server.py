"""Where the agent API listens, and serving it: loopback TCP on a port that stays the same across restarts.

Agents keep the ``EYRIE_URL`` they were started with, and an adopted agent is not restarted, so the port is
claimed machine-wide like an instance's (`supervisor.port_claims`) and remembered in
``run/agent-api/instance.json`` (``{"port": N}``: the shape a port claim is judged stale by, so the claim
lasts exactly as long as that file names its port). A pinned port (``daemon.agent_api.port``) is used or the
daemon does not start; otherwise the remembered one, and when that is taken, the highest free port of the
instance range, logged as a move.

Served like the control API (`supervisor.control.server`): a uvicorn ``Server`` driven from an anyio task,
with a deadline on every request head.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskStatus
from starlette.applications import Starlette

from supervisor._fs import atomic_write
from supervisor._safe_read import read_bytes
from supervisor.control._header_timeout import HEADER_TIMEOUT, HeaderTimeoutProtocol
from supervisor.control.server import BACKLOG, SHUTDOWN_GRACE, build_server
from supervisor.errors import EyrieError
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry, PortOwner
from supervisor.ports import PortRange

__all__ = ["AGENT_API_ID", "AgentListener", "agent_api_dir", "bind_agent_api", "serve_agent_api"]

log = structlog.get_logger("supervisor.agentapi")

AGENT_API_ID = "agent-api"
"""The name the agent API's port claim is made under, in place of an instance id."""

_HOST = "127.0.0.1"
_MAX_RECORD_BYTES = 4096


def agent_api_dir(home: Home) -> Path:
    """``run/agent-api``: the remembered port, and the directory its machine-wide claim names."""
    return home.run_dir / AGENT_API_ID


@dataclass(frozen=True)
class AgentListener:
    """A bound, listening socket for the agent API and the URL agents are given."""

    sock: socket.socket
    port: int

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}/v1"


def _remembered(record: Path) -> int | None:
    try:
        port = json.loads(read_bytes(record, limit=_MAX_RECORD_BYTES, follow_symlinks=False)).get("port")
    except (OSError, ValueError, AttributeError):
        return None
    return port if isinstance(port, int) and 0 < port < 65536 else None


def _listen(port: int) -> socket.socket | None:
    try:
        return socket.create_server((_HOST, port), backlog=BACKLOG)
    except OSError:
        return None


def bind_agent_api(
    home: Home, *, pinned: int | None, span: PortRange, claims: ClaimRegistry
) -> AgentListener:
    """Claim and bind the agent API's port (see the module docstring); `EyrieError` when none can be had."""
    directory = agent_api_dir(home)
    home.ensure_run_dir()
    directory.mkdir(mode=0o700, exist_ok=True)
    record = directory / "instance.json"
    owner = PortOwner.of(home.root, directory, AGENT_API_ID)
    remembered = _remembered(record)
    if pinned is not None:
        candidates = [pinned]
    else:
        candidates = [*([remembered] if remembered else []), *range(span.last, span.first - 1, -1)]
    for port in candidates:
        holder = claims.claim(port, owner)
        if holder is not None:
            if port == pinned:
                raise EyrieError(f"agent API port {port} (pinned) is claimed by {holder.describe()}")
            continue
        sock = _listen(port)
        if sock is None:
            claims.release(port, owner)
            if port == pinned:
                raise EyrieError(f"agent API port {port} (pinned) is in use by another process")
            continue
        break
    else:
        raise EyrieError(f"no free port for the agent API in {span.first}-{span.last}")
    if remembered is not None and remembered != port:
        claims.release(remembered, owner)
        log.warning(
            "agent_api_port_moved",
            previous=remembered,
            port=port,
            note="agents are restarted with the new EYRIE_URL; identity files keep the old one",
        )
    atomic_write(record, json.dumps({"port": port}) + "\n", mode=0o600)
    return AgentListener(sock, port)


async def serve_agent_api(
    app: Starlette,
    listener: AgentListener,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``listener`` until cancelled, then finish requests in flight and close it."""
    protocol = type("AgentProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
    server = build_server(app, lifespan="off", http=protocol)
    try:
        await server.startup(sockets=[listener.sock])
        log.info("agent_api_listening", url=listener.url)
        task_status.started()
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            if server.started:
                with anyio.move_on_after(SHUTDOWN_GRACE + 1):
                    await server.shutdown(sockets=[listener.sock])
            with contextlib.suppress(OSError):
                listener.sock.close()
