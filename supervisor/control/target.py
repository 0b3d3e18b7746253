"""What the control API needs from the daemon: the daemon implements it, the ASGI app only calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from supervisor.control.schema import (
    AddRequest,
    DaemonStatus,
    Event,
    InstanceDetail,
    InstanceView,
    ReloadResult,
)

__all__ = ["ControlTarget"]


class ControlTarget(Protocol):
    """Instances are addressed by name or id; unknown ones raise `supervisor.errors.NotFound`."""

    async def list_instances(self) -> list[InstanceView]:
        """Async because answering may read files (the fleet file, in a worker thread)."""
        ...

    async def get_instance(self, ref: str) -> InstanceView: ...

    async def instance_status(self, ref: str) -> InstanceDetail:
        """One instance on one screen: its process tree, probes, limits and the tail of its log."""
        ...

    async def create_instance(self, request: AddRequest) -> InstanceView:
        """Declare in the fleet file (round-trip edit), provision, start when asked."""
        ...

    async def delete_instance(self, ref: str, *, purge: bool = False) -> None:
        """Stop, drop from the fleet file, move its directory to the trash (with ``purge``: delete it)."""
        ...

    async def start(self, ref: str, *, wait: bool = False) -> InstanceView: ...

    async def stop(self, ref: str, *, wait: bool = False) -> InstanceView: ...

    async def restart(self, ref: str, *, wait: bool = False) -> InstanceView: ...

    async def enable(self, ref: str) -> InstanceView:
        """Set ``autostart: true`` in the fleet file (comes back after a reboot)."""
        ...

    async def disable(self, ref: str) -> InstanceView: ...

    async def reload(self) -> ReloadResult: ...

    async def plan_reload(self) -> ReloadResult:
        """What `reload` would do now, applying nothing (``dry_run`` set)."""
        ...

    def status(self) -> DaemonStatus: ...

    def subscribe(self, *, kept: bool = False) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Every event from now on, until the context exits; ``kept``: first those published before the API
        was served (for its history)."""
        ...

    async def metrics_text(self) -> bytes:
        """Prometheus text exposition of the fleet's state."""
        ...
