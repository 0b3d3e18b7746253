"""Where the agent API listens: loopback TCP on a port that stays the same across restarts (see
`supervisor.agentapi.server`). Bound apart from serving, with sockets only: eyried binds it before it takes
its fleet over, so agents are given their ``EYRIE_URL``, and serves it once the HTTP stack is imported."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import structlog

from supervisor._fs import atomic_write
from supervisor._safe_read import read_bytes
from supervisor.control._listen import BACKLOG
from supervisor.errors import EyrieError
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry, PortOwner
from supervisor.ports import PortRange

__all__ = ["AGENT_API_ID", "AgentListener", "agent_api_dir", "bind_agent_api"]

log = structlog.get_logger("supervisor.agentapi")

AGENT_API_ID = "agent-api"
"""The name the agent API's port claim is made under, in place of an instance id."""

_HOST = "127.0.0.1"
_MAX_RECORD_BYTES = 4096


def agent_api_dir(home: Home) -> Path:
    """``run/agent-api``: the remembered port, and the directory its machine-wide claim names."""
    return home.run_dir / AGENT_API_ID


@dataclass(eq=False)
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
