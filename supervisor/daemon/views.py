"""What ``eyriectl ps`` shows: instance rows with uptime and the DRIFT/MISSING/ORPHAN/DISABLED flags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.control.schema import Flag, InstanceView
from supervisor.models import HierarchyRole, Instance, InstanceStatus, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from supervisor.engine.resources import ResourceSample
    from supervisor.fleet import InstanceDecl

__all__ = ["instance_view", "missing_view", "sample_fields", "uptime_of"]


def instance_view(
    inst: Instance,
    *,
    decl: InstanceDecl | None,
    drift: bool,
    declared_fleet_known: bool = True,
    resources: ResourceSample | None = None,
    inst_json: dict[str, Any] | None = None,
) -> InstanceView:
    """``inst_json``: ``inst.to_json_dict()`` when the caller has it already (it is changed here)."""
    flags: list[Flag] = []
    if drift:
        flags.append("DRIFT")
    if decl is None and declared_fleet_known:
        flags.append("ORPHAN")
    running = inst.status in (InstanceStatus.RUNNING, InstanceStatus.STARTING)
    autostart = decl.autostart if decl is not None else False
    if running and decl is not None and not autostart:
        flags.append("DISABLED")
    uptime = uptime_of(inst)
    data = inst.to_json_dict() if inst_json is None else inst_json
    data.update(
        uptime_seconds=uptime,
        project_id=decl.project if decl is not None else inst.project_id,
        autostart=autostart,
        flags=flags,
        health_status=inst.health_status.value if inst.health_status else "unknown",
    )
    if resources is not None and inst.pid is not None:
        data.update(sample_fields(resources))
    return InstanceView.model_validate(data)


def sample_fields(resources: ResourceSample) -> dict[str, Any]:
    """A view's fields from the resource sample of its running instance."""
    return {
        "cpu_percent": resources.cpu_percent,
        "memory_bytes": resources.memory_bytes,
        "cpu_seconds": round(resources.cpu_seconds, 2),
        "processes": len(resources.tree),
    }


def uptime_of(inst: Instance, now: datetime | None = None) -> float | None:
    """Seconds since a running instance's process started, at ``now`` (default: now); None when it is not
    running."""
    if inst.status is InstanceStatus.RUNNING and inst.started_at is not None:
        return max(((now or utcnow()) - inst.started_at).total_seconds(), 0.0)
    return None


def missing_view(decl: InstanceDecl, error: str = "") -> InstanceView:
    return InstanceView(
        name=decl.name,
        framework=decl.framework,
        hierarchy_role=HierarchyRole(decl.role),
        project_id=decl.project,
        status="",
        autostart=decl.autostart,
        last_error=error,
        flags=["MISSING"],
    )
