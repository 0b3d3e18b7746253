"""The fleet-file edits the API asks for (add, remove, enable, disable): each edits ``fleet.yaml`` and then
reloads it under the daemon's fleet lock, so that an edit and its reload are one change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from supervisor.errors import EyrieError, FleetFileError
from supervisor.fleet import add_instance, remove_instance, set_autostart

if TYPE_CHECKING:
    from pathlib import Path

    from supervisor.control.schema import AddRequest, ReloadResult
    from supervisor.daemon.reconciler import Reconciler

__all__ = ["FleetEdits"]

ReloadLocked = Callable[..., Awaitable["ReloadResult"]]


class FleetEdits:
    """Edits ``fleet_path`` and applies it with ``reload_locked`` (called with ``lock`` held)."""

    def __init__(
        self, fleet_path: Path, lock: anyio.Lock, reconciler: Reconciler, reload_locked: ReloadLocked
    ) -> None:
        self._path = fleet_path
        self._lock = lock
        self._reconciler = reconciler
        self._reload = reload_locked

    async def add(self, request: AddRequest) -> None:
        """Declare and provision the instance; a declaration that cannot be provisioned is taken back out."""
        decl = request.declaration()
        async with self._lock:
            await anyio.to_thread.run_sync(add_instance, self._path, decl)
            result = await self._reload(hold=frozenset() if request.start else frozenset({decl.name}))
            if not result.ok:
                raise FleetFileError(result.error)
            error = self._reconciler.errors().get(decl.name)
            if error is not None:
                await anyio.to_thread.run_sync(remove_instance, self._path, decl.name)
                await self._reload()
                raise EyrieError(error)

    async def remove(self, name: str, *, purge: bool) -> None:
        """Take the instance out of the file, or, if it is an orphan that no reload removes, drop it here."""
        async with self._lock:
            if any(d.name == name for d in self._reconciler.fleet.instances):
                await anyio.to_thread.run_sync(remove_instance, self._path, name)
                await self._reload(purge=frozenset({name}) if purge else frozenset())
            else:
                await self._reconciler.drop(name, purge=purge)

    async def set_autostart(self, name: str, enabled: bool) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(set_autostart, self._path, name, enabled)
            await self._reload()
