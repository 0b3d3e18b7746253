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

import anyio
import structlog
from anyio.abc import TaskStatus
from starlette.applications import Starlette

from supervisor.agentapi._listen import AGENT_API_ID, AgentListener, agent_api_dir, bind_agent_api
from supervisor.control._header_timeout import HEADER_TIMEOUT, HeaderTimeoutProtocol
from supervisor.control.server import SHUTDOWN_GRACE, build_server

__all__ = ["AGENT_API_ID", "AgentListener", "agent_api_dir", "bind_agent_api", "serve_agent_api"]

log = structlog.get_logger("supervisor.agentapi")


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
