"""An in-memory `ControlTarget` for exercising the control API, the client and ``eyriectl`` without a daemon.

It keeps instance views in a dict and follows the same contract as the daemon: names or ids as references,
`NotFound` / `NameExists` / `UnsupportedFramework` for bad requests, one event per status change. Failures
can be queued per operation (``fail_next``) to test error paths, and ``reload_result`` decides what a reload
answers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from supervisor import __version__
from supervisor.control.hub import EventHub
from supervisor.control.schema import (
    AddRequest,
    DaemonStatus,
    Event,
    InstanceDetail,
    InstanceView,
    ReloadResult,
)
from supervisor.errors import EyrieError, NameExists, NotFound, UnsupportedFramework
from supervisor.frameworks.registry import BUILTIN_FRAMEWORKS
from supervisor.models import InstanceStatus, check_name, new_instance_id

__all__ = ["MemoryTarget"]


class MemoryTarget:
    """A fleet that lives in memory; every operation succeeds instantly unless told otherwise."""

    def __init__(self, home: str = "/nonexistent") -> None:
        self.home = home
        self.instances: dict[str, InstanceView] = {}
        self.reload_result = ReloadResult(ok=True)
        self.fail_next: dict[str, EyrieError] = {}
        self.outcome: dict[str, str] = {}  # name → the status its next start/restart ends in
        self.calls: list[tuple[str, str]] = []
        self._started_at = datetime.now(UTC)
        self._hub = EventHub()

    # --- set-up helpers for tests

    def put(self, name: str, *, status: str = "running", **fields: object) -> InstanceView:
        view = InstanceView.model_validate(
            {"name": name, "id": new_instance_id(), "framework": "embedded", "status": status, **fields}
        )
        self.instances[name] = view
        return view

    def publish(self, event: Event) -> None:
        self._hub.publish(event)

    @property
    def subscriber_count(self) -> int:
        return self._hub.subscriber_count

    # --- the ControlTarget protocol

    async def list_instances(self) -> list[InstanceView]:
        return list(self.instances.values())

    async def get_instance(self, ref: str) -> InstanceView:
        return self._find(ref)

    async def instance_status(self, ref: str) -> InstanceDetail:
        view = self._find(ref)
        return InstanceDetail(name=view.name, id=view.id, framework=view.framework, status=view.status)

    async def create_instance(self, request: AddRequest) -> InstanceView:
        self._record("create", request.name)
        check_name(request.name)
        if request.name in self.instances:
            raise NameExists(f"instance name {request.name!r} already exists")
        if request.framework not in BUILTIN_FRAMEWORKS:
            raise UnsupportedFramework(f"unsupported framework {request.framework!r}")
        view = self.put(
            request.name,
            status="created",
            framework=request.framework,
            hierarchy_role=request.role,
            autostart=request.enable,
        )
        if request.start:
            return self._set_status(view, "running")
        return view

    async def delete_instance(self, ref: str, *, purge: bool = False) -> None:
        view = self._find(ref)
        self._record("delete", f"{view.name} purge={purge}")
        del self.instances[view.name]

    async def start(self, ref: str, *, wait: bool = False) -> InstanceView:
        return await self._change(ref, "start", "running", wait)

    async def stop(self, ref: str, *, wait: bool = False) -> InstanceView:
        return await self._change(ref, "stop", "stopped", wait)

    async def restart(self, ref: str, *, wait: bool = False) -> InstanceView:
        return await self._change(ref, "restart", "running", wait)

    async def enable(self, ref: str) -> InstanceView:
        view = self._find(ref)
        self._record("enable", view.name)
        view.autostart = True
        return view

    async def disable(self, ref: str) -> InstanceView:
        view = self._find(ref)
        self._record("disable", view.name)
        view.autostart = False
        return view

    async def reload(self) -> ReloadResult:
        self._record("reload", "")
        return self.reload_result

    async def plan_reload(self) -> ReloadResult:
        self._record("plan_reload", "")
        return self.reload_result.model_copy(update={"dry_run": True})

    def status(self) -> DaemonStatus:
        counts: dict[str, int] = {}
        for view in self.instances.values():
            counts[view.status] = counts.get(view.status, 0) + 1
        now = datetime.now(UTC)
        return DaemonStatus(
            pid=os.getpid(),
            version=__version__,
            home=self.home,
            fleet_file=f"{self.home}/fleet.yaml",
            started_at=self._started_at,
            uptime_seconds=(now - self._started_at).total_seconds(),
            instances=counts,
            last_reload=self.reload_result,
        )

    def subscribe(
        self, *, kept: bool = False
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        return self._hub.subscribe(kept=kept)

    async def metrics_text(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        up = Gauge("eyrie_instance_up", "1 when the instance is running", ["instance"], registry=registry)
        for view in self.instances.values():
            up.labels(view.name).set(1.0 if view.status == "running" else 0.0)
        return generate_latest(registry)

    # --- internals

    def _find(self, ref: str) -> InstanceView:
        for view in self.instances.values():
            if ref in (view.name, view.id):
                return view
        raise NotFound(f"instance {ref!r} not found")

    def _record(self, op: str, detail: str) -> None:
        self.calls.append((op, detail))
        if (exc := self.fail_next.pop(op, None)) is not None:
            raise exc

    async def _change(self, ref: str, op: str, status: str, wait: bool) -> InstanceView:
        view = self._find(ref)
        self._record(op, f"{view.name} wait={wait}")
        if status == InstanceStatus.RUNNING.value:
            status = self.outcome.pop(view.name, status)
        return self._set_status(view, status)

    def _set_status(self, view: InstanceView, status: str) -> InstanceView:
        before = view.status
        view.status = status
        view.pid = 4242 if status == InstanceStatus.RUNNING.value else None
        self.publish(
            Event(
                time=datetime.now(UTC),
                event="transition",
                instance=view.name,
                instance_id=view.id,
                framework=view.framework,
                from_status=before,
                to_status=status,
            )
        )
        return view
