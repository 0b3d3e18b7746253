"""The daemon's listeners, the control API and the agent API: bound before the fleet is taken over, served
once the HTTP stack is imported (Starlette, uvicorn, h11 and both apps: about 0.25 s of CPU and 8 MiB).

Every start binds both, starts or adopts the fleet, then serves, so the fleet's spawns and adoptions do not
wait on those imports. Meanwhile a request waits in its socket's backlog instead of being refused (or, after
a daemon that did not stop, refused by the stale socket file), and an agent spawned meanwhile is given its
``EYRIE_URL`` from the bound port. A start that takes long is served before it is over (`START_GRACE`), so
that ``eyriectl ps`` answers during a long first start; an adoption is never interrupted by the imports.
"""

from __future__ import annotations

import functools
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
import structlog

from supervisor.agentapi._listen import AgentListener, bind_agent_api
from supervisor.daemon._malloc import compact_heap
from supervisor.daemon._settings import bind_control_api

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from supervisor.control._listen import ControlSockets
    from supervisor.daemon._agent_api import DaemonParts
    from supervisor.fleet import FleetFile

__all__ = ["ADOPTION_GRACE", "START_GRACE", "Listeners"]

log = structlog.get_logger("supervisor.agentapi")

ADOPTION_GRACE = 1.0
"""Seconds the APIs wait, at most, for the fleet to come to rest before they are served after an adoption
(an instance restarted meanwhile may take its readiness timeout to come to rest)."""

START_GRACE = 5.0
"""Seconds from binding after which a start that is not over is served all the same (a first start of many
instances provisions for seconds; its requests must not wait for all of it)."""


class Listeners:
    """Bound by `bind`, served by `serve`; what was bound and never served is closed on leaving the
    ``async with``."""

    def __init__(self, daemon: DaemonParts, fleet: FleetFile) -> None:
        self._daemon = daemon
        self._fleet = fleet
        self._control: ControlSockets | None = None
        self._agents: AgentListener | None = None
        self._serving = False
        self._served = anyio.Event()

    async def bind(self) -> None:
        """Bind the operator's sockets and the agent API's port (agents are given its URL from now on)."""
        self._control = bind_control_api(self._fleet, self._daemon.home)
        settings, provisioner = self._fleet.daemon.agent_api, self._daemon.provisioner
        if not settings.enabled:
            provisioner.eyrie_url = ""
            log.info("agent_api_off")
            return
        self._agents = await anyio.to_thread.run_sync(
            functools.partial(
                bind_agent_api,
                self._daemon.home,
                pinned=settings.port,
                span=self._fleet.daemon.ports.span(),
                claims=provisioner.claims,
            )
        )
        provisioner.eyrie_url = self._agents.url

    async def serve(
        self, tg: TaskGroup, *, after: anyio.Event | None = None, within: float = ADOPTION_GRACE
    ) -> None:
        """Import the HTTP stack and serve both APIs in ``tg``, each closing its sockets when it ends:
        ``after`` that event, or ``within`` seconds, whichever comes first. Returns once they are served,
        by this call or by another one made earlier."""
        if after is not None and not self._serving:
            with anyio.move_on_after(within):
                await _first_of(after, self._served)
        if self._serving:
            await self._served.wait()
            return
        self._serving = True
        from supervisor.control.app import create_app
        from supervisor.control.server import serve_bound
        from supervisor.daemon._agent_api import serve_agents

        app = create_app(self._daemon)
        control, self._control = self._control or bind_control_api(self._fleet, self._daemon.home), None
        await tg.start(functools.partial(serve_bound, app, control))
        self._daemon.hub.served()  # the API's history took what the hub kept (it subscribes first)
        agents, self._agents = self._agents, None
        if agents is not None:
            await tg.start(serve_agents, self._daemon, agents)
        self._served.set()
        compact_heap()  # what the HTTP stack's imports freed (and the start-up, when it is over)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            control.close()
        agents, self._agents = self._agents, None
        if agents is not None:
            agents.sock.close()


async def _first_of(*events: anyio.Event) -> None:
    """Return once any of ``events`` is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)
