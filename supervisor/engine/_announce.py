"""Telling what happened to an instance: one log line, and one `Event` for the engine's subscriber."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from supervisor.engine.events import Event
from supervisor.engine.runtime import InstanceRuntime
from supervisor.models import Instance, InstanceStatus, utcnow

__all__ = ["announce", "bound_log"]

_log = structlog.get_logger("supervisor.engine")


def bound_log(rt: InstanceRuntime) -> Any:
    """The engine's logger for one instance: every line names it."""
    return _log.bind(instance=rt.name, instance_id=rt.instance_id, framework=rt.framework)


def announce(
    emit: Callable[[Event], None],
    log: Any,
    rt: InstanceRuntime,
    inst: Instance,
    kind: str,
    old: InstanceStatus,
    new: InstanceStatus,
    detail: str,
    data: dict[str, Any],
) -> None:
    """Log and emit a ``kind`` event ("transition", "health"); a failing subscriber is logged, not raised."""
    pid = inst.pid
    if kind == "transition":
        # a move into error is logged as one, so that `journalctl -p err` shows it
        level = log.error if new == InstanceStatus.ERROR and old != new else log.info
        level(kind, pid=pid, from_status=old.value, to_status=new.value, detail=detail)
    else:
        log.info(kind, pid=pid, status=new.value, detail=detail, **data)
    event = Event(
        time=utcnow(),
        event=kind,
        instance=rt.name,
        instance_id=rt.instance_id,
        framework=rt.framework,
        pid=pid,
        from_status=old.value,
        to_status=new.value,
        detail=detail,
        data={"restart_count": inst.restart_count, **data},
    )
    try:
        emit(event)
    except Exception:
        log.exception("event_subscriber_failed")
