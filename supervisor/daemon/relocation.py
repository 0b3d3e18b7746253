"""Moving an instance off a port a stranger holds, for the engine (which may not re-render configs itself).

The engine finds the conflict at spawn and calls `PortRelocator`; the fleet file in force decides whether the
instance may move (``daemon.ports.on_conflict``, the instance's ``pin_port``). A move claims a free port in
``daemon.ports``, re-renders the config for it and records it in ``instance.json`` (`Provisioner.move_port`),
and hands back the runtime to start with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.daemon.runtime import build_runtime
from supervisor.errors import NotFound

if TYPE_CHECKING:
    from supervisor.daemon.reconciler import Reconciler
    from supervisor.engine import InstanceRuntime
    from supervisor.provision import Provisioner

__all__ = ["PortRelocator"]

log = structlog.get_logger("supervisor.daemon")


class PortRelocator:
    """The engine's relocator (`supervisor.engine.Engine`'s ``relocate``) for the daemon's fleet."""

    def __init__(self, provisioner: Provisioner, reconciler: Reconciler) -> None:
        self._provisioner = provisioner
        self._reconciler = reconciler

    async def __call__(self, rt: InstanceRuntime, holder: str) -> InstanceRuntime | None:
        """The runtime on a new port; None when the fleet file says this instance stays where it is."""
        fleet = self._reconciler.fleet
        found = self._reconciler.find(rt.instance_id)
        if found is None:
            return None  # not declared (an orphan): nothing says how it runs elsewhere
        name, applied = found
        try:
            pinned = fleet.decl(name).pin_port
        except NotFound:
            return None
        settings = fleet.daemon.ports
        if pinned or settings.on_conflict == "fail":
            why = "pin_port" if pinned else "daemon.ports.on_conflict: fail"
            log.error(
                "port_conflict",
                instance=name,
                instance_id=rt.instance_id,
                port=rt.port,
                holder=holder,
                stays=why,
            )
            return None
        resolved = applied.resolved
        provisioner = self._provisioner
        persona = provisioner.personas.get(resolved.persona) if resolved.persona else None
        inst = await anyio.to_thread.run_sync(lambda: provisioner.move_port(rt.instance_id, persona=persona))
        log.warning(
            "port_moved",
            instance=name,
            instance_id=rt.instance_id,
            old_port=rt.port,
            port=inst.port,
            holder=holder,
        )
        return build_runtime(
            resolved,
            inst,
            provisioner.store,
            config_hash=inst.config_hash,
            eyrie_url=provisioner.eyrie_url,
            files_digest=rt.files_digest,
        )
