"""The daemon's side of the agent API: its listener, bound before the fleet so every agent is given its
``EYRIE_URL``, and the `AgentTarget` it serves, made of the daemon's own parts. Loaded with the HTTP stack
(see `supervisor.daemon._listeners`); binding is `supervisor.agentapi._listen`'s, which needs none of it.

Whether it runs and on which port is read at start (a change takes effect at the next start or re-exec);
``max_children`` is read from the fleet in force at each creation.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

import anyio

from supervisor.agentapi.app import create_agent_app
from supervisor.agentapi.permissions import Member
from supervisor.agentapi.server import serve_agent_api
from supervisor.control.target import ControlTarget

if TYPE_CHECKING:
    from supervisor.agentapi._listen import AgentListener
    from supervisor.control.hub import EventHub
    from supervisor.control.schema import AddRequest, Event, InstanceView
    from supervisor.daemon.reconciler import Reconciler
    from supervisor.engine import Engine
    from supervisor.models import Instance
    from supervisor.paths import Home
    from supervisor.provision import Provisioner
    from supervisor.store import Store

__all__ = ["DaemonAgents", "serve_agents"]


class DaemonParts(ControlTarget, Protocol):
    """What of the daemon the agent API uses (the daemon has all of it)."""

    home: Home
    store: Store
    hub: EventHub
    engine: Engine
    provisioner: Provisioner
    reconciler: Reconciler


class DaemonAgents:
    """`supervisor.agentapi.target.AgentTarget` over the daemon: the same edits and actions as the
    operator's API, on names the permission table has already allowed."""

    def __init__(self, daemon: DaemonParts) -> None:
        self._daemon = daemon

    @property
    def max_children(self) -> int:
        return self._daemon.reconciler.fleet.daemon.agent_api.max_children

    def members(self) -> list[Member]:
        reconciler = self._daemon.reconciler
        found = []
        for decl in reconciler.fleet.instances:
            applied = reconciler.applied(decl.name)
            if applied is not None:
                found.append(Member(decl.name, applied.instance_id, decl.role, decl.project, decl.created_by))
        return found

    def token(self, instance_id: str) -> str:
        return self._daemon.store.token(instance_id)

    async def view(self, name: str) -> InstanceView:
        return await self._daemon.get_instance(name)

    async def views(self) -> list[InstanceView]:
        return await self._daemon.list_instances()

    async def create(self, request: AddRequest) -> InstanceView:
        return await self._daemon.create_instance(request)

    async def remove(self, name: str) -> None:
        await self._daemon.delete_instance(name)

    async def start(self, name: str) -> InstanceView:
        return await self._daemon.start(name)

    async def stop(self, name: str) -> InstanceView:
        return await self._daemon.stop(name)

    async def write_note(self, instance_id: str, note: str) -> None:
        def record(inst: Instance) -> None:
            setattr(inst, "note", note)  # noqa: B010 - a key beside the seed's, kept like any unknown one

        await anyio.to_thread.run_sync(functools.partial(self._daemon.store.update, instance_id, record))
        await self._daemon.engine.reread(instance_id)

    def publish(self, event: Event) -> None:
        self._daemon.hub.publish(event)


async def serve_agents(
    daemon: DaemonParts,
    listener: AgentListener,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the agent API on ``listener`` until cancelled."""
    await serve_agent_api(create_agent_app(DaemonAgents(daemon)), listener, task_status=task_status)
