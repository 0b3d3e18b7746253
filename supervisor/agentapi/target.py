"""What the agent API needs from the daemon: the daemon implements it, the ASGI app only calls it."""

from __future__ import annotations

from typing import Protocol

from supervisor.agentapi.permissions import Member
from supervisor.control.schema import AddRequest, Event, InstanceView

__all__ = ["AgentTarget"]


class AgentTarget(Protocol):
    """Instances are addressed by name; unknown ones raise `supervisor.errors.NotFound`."""

    @property
    def max_children(self) -> int:
        """Live instances one agent may have created (the fleet file's ``daemon.agent_api.max_children``)."""
        ...

    def members(self) -> list[Member]:
        """Every instance declared in the fleet in force and managed by the daemon now."""
        ...

    def token(self, instance_id: str) -> str:
        """The instance's token (``secrets/token``), "" when it has none; blocking: call it in a thread."""
        ...

    async def view(self, name: str) -> InstanceView: ...

    async def views(self) -> list[InstanceView]: ...

    async def create(self, request: AddRequest) -> InstanceView:
        """Declare in the fleet file like ``eyriectl add`` (comments kept), provision, start when asked."""
        ...

    async def remove(self, name: str) -> None:
        """Stop, drop from the fleet file, move its directory to the trash."""
        ...

    async def start(self, name: str) -> InstanceView: ...

    async def stop(self, name: str) -> InstanceView: ...

    async def write_note(self, instance_id: str, note: str) -> None:
        """Record the note in the instance's ``instance.json`` (the daemon writes it, not the agent)."""
        ...

    def publish(self, event: Event) -> None:
        """Send ``event`` to every subscriber of the control API's event stream."""
        ...
