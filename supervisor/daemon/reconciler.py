"""Making the running fleet match the fleet file: a diff against the file in force, then, per instance, adopt
or provision it, replace its process, update its policies live, or drop it.

Each declared instance has one `InstanceRecord`: whether the engine runs it (its id and the declaration its
process runs from) and why the last step on it failed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.control.schema import ReloadResult
from supervisor.daemon.runtime import build_runtime
from supervisor.engine.process import current_boot_id
from supervisor.errors import EyrieError, NameExists, NotFound
from supervisor.fleet import FleetFile, diff_fleets, load_fleet
from supervisor.models import CreateRequest, Instance, utcnow
from supervisor.store import NameIndex

if TYPE_CHECKING:
    from pathlib import Path

    from supervisor.engine import Engine
    from supervisor.fleet import ResolvedInstance
    from supervisor.provision import Provisioner
    from supervisor.store import Store

__all__ = ["Applied", "InstanceRecord", "Reconciler"]

log = structlog.get_logger("supervisor.daemon")


@dataclass(frozen=True)
class Applied:
    """An instance the engine runs, and the declaration its process was started or last updated from."""

    instance_id: str
    resolved: ResolvedInstance


@dataclass
class InstanceRecord:
    """What the daemon holds about one declared instance."""

    applied: Applied | None = None
    """Set once the engine runs the instance."""
    error: str | None = None
    """Why the last provision or update failed; the instance may still run from its earlier declaration."""


class Reconciler:
    """Applies fleet files, one change at a time (the caller holds the daemon's fleet lock)."""

    def __init__(self, fleet_path: Path, store: Store, provisioner: Provisioner, engine: Engine) -> None:
        self.fleet_path = fleet_path
        self.fleet = FleetFile(version=1)
        """The fleet file in force: the last one applied."""
        self._store = store
        self._provisioner = provisioner
        self._engine = engine
        self._records: dict[str, InstanceRecord] = {}

    # --- reading

    def managed(self) -> dict[str, Applied]:
        """Name → what the engine runs, for every instance it runs."""
        return {name: r.applied for name, r in self._records.items() if r.applied is not None}

    def applied(self, name: str) -> Applied | None:
        record = self._records.get(name)
        return record.applied if record is not None else None

    def errors(self) -> dict[str, str]:
        """Name → why it could not be provisioned or updated."""
        return {name: r.error for name, r in self._records.items() if r.error is not None}

    def find(self, ref: str) -> tuple[str, Applied] | None:
        """The managed instance named ``ref``, else the one whose id it is."""
        if (applied := self.applied(ref)) is not None:
            return ref, applied
        return next(((n, a) for n, a in self.managed().items() if a.instance_id == ref), None)

    # --- applying

    async def load_initial(self) -> FleetFile:
        """The fleet file to start with; an empty fleet when there is none yet."""
        if not self.fleet_path.exists():
            log.warning("fleet_file_missing", path=str(self.fleet_path), hint="run `eyriectl init`")
            return FleetFile(version=1)
        return await anyio.to_thread.run_sync(load_fleet, self.fleet_path)

    async def reload(
        self, *, hold: frozenset[str] = frozenset(), keep: frozenset[str] = frozenset()
    ) -> ReloadResult:
        """Re-read the fleet file and apply it; an invalid file changes nothing and is reported."""
        try:
            new = await anyio.to_thread.run_sync(load_fleet, self.fleet_path)
        except EyrieError as exc:
            log.error("reload_rejected", error=str(exc), path=str(self.fleet_path))
            return ReloadResult(ok=False, error=str(exc), at=utcnow())
        result = await self.apply(new, hold=hold, keep=keep)
        log.info(
            "reload_applied",
            added=result.added,
            removed=result.removed,
            restarted=result.restarted,
            updated=result.updated,
            unchanged=len(result.unchanged),
            seconds=round(result.seconds, 4),
        )
        return result

    async def apply(
        self, new: FleetFile, *, hold: frozenset[str] = frozenset(), keep: frozenset[str] = frozenset()
    ) -> ReloadResult:
        """Make the running fleet match ``new``.

        ``hold`` names added instances that must not start yet; ``keep`` removed ones whose files stay.
        """
        started = time.monotonic()
        diff = diff_fleets(self.fleet if self.managed() else None, new)
        result = ReloadResult(ok=True, at=utcnow())
        self.fleet = new
        index = NameIndex({}, {})
        if diff.added or diff.process_changed:  # a no-change reload reads no instance file
            index = await anyio.to_thread.run_sync(self._store.index)
        for name in diff.removed:
            await self.drop(name, keep_files=name in keep)
            result.removed.append(name)
        for name in diff.added:
            if await self._adopt_or_provision(new.resolve(name), index, hold=name in hold):
                result.added.append(name)
        for name in diff.process_changed:
            if (applied := self.applied(name)) is None:
                if await self._adopt_or_provision(new.resolve(name), index, hold=False):
                    result.added.append(name)
                continue
            try:
                await self._replace(applied.instance_id, new.resolve(name))
            except EyrieError as exc:
                self._failed(name, exc, "instance_update_failed")
                continue
            result.restarted.append(name)
        for name in diff.policy_changed:
            if (applied := self.applied(name)) is not None:
                await self._update_policies(applied.instance_id, new.resolve(name))
                result.updated.append(name)
        result.unchanged = list(diff.unchanged)
        result.seconds = time.monotonic() - started
        return result

    async def drop(self, name: str, *, keep_files: bool) -> None:
        """Stop and deprovision ``name``; its files move under ``removed/`` with ``keep_files``."""
        record = self._records.pop(name, None)
        instance_id = record.applied.instance_id if record is not None and record.applied else None
        if instance_id is None:
            with contextlib.suppress(NotFound, NameExists):  # a contested name: no directory is its
                instance_id = self._store.get_by_name(name).id
        if instance_id is None:
            return
        with contextlib.suppress(KeyError, NotFound):
            await self._engine.remove(instance_id)
        await anyio.to_thread.run_sync(
            lambda: self._provisioner.deprovision(instance_id, keep_files=keep_files)
        )

    def _failed(self, name: str, exc: EyrieError, event: str) -> None:
        self._records.setdefault(name, InstanceRecord()).error = str(exc)
        log.error(event, instance=name, error=str(exc))

    def _reapplied(self, name: str, applied: Applied) -> None:
        """The engine runs ``name`` from a new declaration; an earlier failure stays on record."""
        self._records.setdefault(name, InstanceRecord()).applied = applied

    async def _adopt_or_provision(self, resolved: ResolvedInstance, index: NameIndex, *, hold: bool) -> bool:
        """Run the stored instance, or provision it first; False (and the error recorded) if it fails, or if
        the name is contested (two directories hold it, or an unreadable one does): never a second one."""
        inst = index.instances.get(resolved.name)
        try:
            if resolved.name in index.contested:
                raise NameExists(index.contested[resolved.name])
            if inst is None:
                inst = await anyio.to_thread.run_sync(self._provision, resolved, hold)
            config_hash = self._provisioner.config_hash(inst)
            runtime = build_runtime(resolved, inst, self._store, config_hash=config_hash)
        except EyrieError as exc:
            self._failed(resolved.name, exc, "instance_provision_failed")
            return False
        self._records[resolved.name] = InstanceRecord(applied=Applied(inst.id, resolved))
        await self._engine.add(runtime)
        return True

    def _provision(self, resolved: ResolvedInstance, hold: bool) -> Instance:
        personas = self._provisioner.personas
        persona = personas.get(resolved.persona) if resolved.persona else None
        parent = self.applied(resolved.parent) if resolved.parent else None
        request = CreateRequest(
            name=resolved.name,
            framework=resolved.framework,
            persona_id=resolved.persona,
            hierarchy_role=resolved.role,
            project_id=resolved.project,
            parent_id=parent.instance_id if parent is not None else resolved.parent,
            model=resolved.model,
            auto_start=resolved.autostart,
            project_name=resolved.project,
        )
        inst = self._provisioner.provision(request, persona, spec=resolved.spec)
        if hold:
            boot_id = current_boot_id()

            def held(i: Instance) -> None:
                i.desired = "stopped"
                i.desired_boot_id = boot_id

            inst = self._store.update(inst.id, held)
        return inst

    async def _replace(self, instance_id: str, resolved: ResolvedInstance) -> None:
        """A change that needs a new process: re-render the config, then restart this instance only."""
        personas = self._provisioner.personas
        persona = personas.get(resolved.persona) if resolved.persona else None
        framework, model = resolved.framework, resolved.model
        config_file = resolved.spec.config_file

        def describe(i: Instance) -> None:
            if i.framework != framework:
                i.framework = framework
                i.config_path = str(self._store.dir(i.id) / config_file)
            if model:
                i.model = model

        inst = await anyio.to_thread.run_sync(self._store.update, instance_id, describe)
        config_hash = await anyio.to_thread.run_sync(
            lambda: self._provisioner.rerender(inst, model=model, persona=persona)
        )
        await self._engine.update(build_runtime(resolved, inst, self._store, config_hash=config_hash))
        self._reapplied(resolved.name, Applied(instance_id, resolved))

    async def _update_policies(self, instance_id: str, resolved: ResolvedInstance) -> None:
        """A change the running process does not see (restart, health, logs, autostart): applied live."""
        inst = self._engine.get(instance_id)
        await self._engine.update(build_runtime(resolved, inst, self._store, config_hash=inst.config_hash))
        self._reapplied(resolved.name, Applied(instance_id, resolved))
