"""Making the running fleet match the fleet file: a diff against the file in force, then, per instance, adopt
or provision it, replace its process, update its policies live, or drop it.

Each declared instance has one `InstanceRecord`: whether the engine runs it (its id and the declaration its
process runs from) and why the last step on it failed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from supervisor.control._reload import ReloadResult
from supervisor.daemon._checked_fleet import fallback_fleet, read_checked
from supervisor.daemon._file_watch import FileWatch
from supervisor.daemon._fresh import provision_new
from supervisor.daemon._last_applied import APPLIED_FILE, save_applied
from supervisor.daemon._project_context import sync_project_file
from supervisor.daemon._statcache import StatCache, file_key
from supervisor.daemon._withdrawn import end_processes, last_applied
from supervisor.daemon.runtime import build_runtime
from supervisor.engine.open_files import make_room
from supervisor.errors import EyrieError, NameExists, NotFound
from supervisor.fleet import FleetFile, diff_fleets
from supervisor.models import Instance, InstanceStatus, utcnow
from supervisor.store import NameIndex

if TYPE_CHECKING:
    from pathlib import Path

    from supervisor.daemon._statcache import FileKey
    from supervisor.engine import Engine, InstanceRuntime
    from supervisor.fleet import ResolvedInstance
    from supervisor.paths import Home
    from supervisor.provision import Provisioner
    from supervisor.store import Store

__all__ = ["Applied", "Initial", "InstanceRecord", "Reconciler"]

log = structlog.get_logger("supervisor.daemon")


@dataclass(frozen=True)
class Applied:
    """An instance the engine runs, and the declaration its process was started or last updated from."""

    instance_id: str
    resolved: ResolvedInstance


@dataclass(eq=False)
class InstanceRecord:
    """What the daemon holds about one declared instance."""

    applied: Applied | None = None
    """Set once the engine runs the instance."""
    error: str | None = None
    """Why the last provision or update failed; the instance may still run from its earlier declaration."""


@dataclass(eq=False)
class Initial:
    """The fleet eyried starts with, and why the fleet file was refused when it was."""

    fleet: FleetFile
    rejected: ReloadResult | None = None


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
        self._run_dir = provisioner.home.run_dir
        self._first_apply = True
        self.fleet_read: tuple[FileKey, FleetFile] | None = None
        """The fleet file's stat key before its last accepted read, and what that read gave: the listing
        takes the file, unchanged since, as the fleet in force without parsing it again."""
        self.config_hashes = StatCache[str](FileWatch())
        """Hashes of the instances' config files by path, as an adoption read them and as the listing reads
        them for DRIFT (`supervisor.daemon.inventory`): the first listing after a start hashes none again."""

    # --- reading

    @property
    def home(self) -> Home:
        return self._provisioner.home

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

    async def initial(self) -> Initial:
        """The fleet eyried starts with. An invalid file never stops eyried: it supervises by the fleet last
        applied (kept in ``run/``), else an empty one, and keeps the rejection for `status`."""
        if not self.fleet_path.exists() and not (self._run_dir / APPLIED_FILE).exists():  # a new home
            log.warning("fleet_file_missing", path=str(self.fleet_path), hint="run `eyriectl init`")
            return Initial(FleetFile(version=1))
        checked = await self._read_checked()
        if not isinstance(checked, ReloadResult):
            return Initial(checked)
        fallback, source = await fallback_fleet(self._run_dir, self._store)
        log.error("fleet_file_rejected_at_start", error=checked.error, using=source)
        checked.error = f"{checked.error} (eyried runs {source} until the file is fixed and reloaded)"
        return Initial(fallback, rejected=checked)

    async def start(self, initial: Initial | None = None) -> ReloadResult:
        """Apply the fleet eyried starts with (`initial`, chosen now when not given); the answer is the
        rejection when the fleet file was refused."""
        if initial is None:
            initial = await self.initial()
        if initial.rejected is not None:  # a fallback (maybe empty) is no declaration: nothing is withdrawn
            self._first_apply = False
        applied = await self.apply(initial.fleet)
        return initial.rejected or applied

    async def reload(
        self, *, hold: frozenset[str] = frozenset(), purge: frozenset[str] = frozenset()
    ) -> ReloadResult:
        """Re-read the fleet file and apply it, all or nothing: a file that is invalid, or declares an
        instance that could never run, changes nothing and is reported with every problem found."""
        new = await self._read_checked()
        if isinstance(new, ReloadResult):
            log.error("reload_rejected", error=new.error, path=str(self.fleet_path))
            return new
        result = await self.apply(new, hold=hold, purge=purge)
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

    async def _read_checked(self) -> FleetFile | ReloadResult:
        """The fleet file checked whole; what is applied unchanged (and did not fail) is not tried again."""
        in_force, failed = self.fleet.resolve_all(), self.errors()
        key = file_key(self.fleet_path)  # before the read: a change during it shows as another key
        checked = await read_checked(self.fleet_path, self._store, in_force=in_force, failed=failed)
        if isinstance(checked, FleetFile) and key is not None:
            self.fleet_read = (key, checked)
        return checked

    async def apply(
        self, new: FleetFile, *, hold: frozenset[str] = frozenset(), purge: frozenset[str] = frozenset()
    ) -> ReloadResult:
        """Make the running fleet match ``new``.

        ``hold`` names added instances that must not start yet; ``purge`` removed ones whose files are
        deleted rather than moved to the trash.
        """
        started = time.monotonic()
        diff = diff_fleets(self.fleet if self.managed() else None, new)
        result = ReloadResult(ok=True, at=utcnow())
        old, self.fleet = self.fleet, new
        if (limit := make_room(len(new.names()))) is not None:
            log.info("open_files_limit", soft=limit.soft, hard=limit.hard, agents=limit.agents)
        removed, withdrawn, stale = diff.removed, frozenset[str](), frozenset[str]()
        if self._first_apply:  # what the previous image applied and the file no longer declares, or not so
            self._first_apply = False
            if (before := await last_applied(self._run_dir)) is not None:
                declared = frozenset(new.names())  # not a list per name: O(N) at N = 1000
                old, removed = before, tuple(name for name in before.names() if name not in declared)
                withdrawn, stale = frozenset(removed), _process_changed(before, new)
        failed = self.errors()
        retry = [name for name in diff.unchanged if name in failed]  # a failure is retried, never "unchanged"
        self._provisioner.ports = new.daemon.ports.span()
        index = NameIndex({}, {})
        if diff.added or diff.process_changed or retry:  # a no-change reload reads no instance file
            index = await anyio.to_thread.run_sync(self._store.index)
        dropped: list[str] = []
        for name in removed:
            declaration = old.decl(name).model_dump(mode="json", exclude_defaults=True)
            if name in withdrawn:
                await self._supervise_withdrawn(old, name)
            try:
                await self.drop(name, purge=name in purge, declaration={"name": name, **declaration})
            except Exception as exc:  # its files stay where they are; the rest of the fleet goes on
                log.error("instance_removal_failed", instance=name, error=str(exc))
                dropped.append(f"{name}: removal failed: {exc}")
            result.removed.append(name)
        unrun = [name for name in [*diff.process_changed, *retry] if self.applied(name) is None]
        fresh = await self._provision_new(new, index, [*diff.added, *unrun], hold)
        for name in diff.added:
            resolved = new.resolve(name)
            if await self._adopt_or_provision(resolved, index, fresh, rerender=name in stale):
                (result.restarted if name in stale else result.added).append(name)
        for name in [*diff.process_changed, *retry]:
            if (applied := self.applied(name)) is None:
                if await self._adopt_or_provision(new.resolve(name), index, fresh):
                    result.added.append(name)
                continue
            try:
                await self._replace(applied.instance_id, new.resolve(name))
            except Exception as exc:  # that instance's own failure: the others go on
                self._failed(name, exc, "instance_update_failed", applied.instance_id)
                continue
            result.restarted.append(name)
        for name in [*diff.context_changed, *diff.policy_changed]:
            if (applied := self.applied(name)) is not None:
                try:
                    outcome = await self._update_live(applied.instance_id, new.resolve(name))
                except Exception as exc:
                    self._failed(name, exc, "instance_update_failed", applied.instance_id)
                    continue
                (result.restarted if outcome == "restarted" else result.updated).append(name)
        for name in diff.unchanged:
            if name not in retry and await self._secret_changed(name, new.resolve(name)):
                result.restarted.append(name)
        result.unchanged = [n for n in diff.unchanged if n not in retry and n not in result.restarted]
        result.problems = [*dropped, *(f"{name}: {error}" for name, error in self.errors().items())]
        result.warnings = new.project_warnings()
        await self._keep_applied(new)
        result.seconds = time.monotonic() - started
        return result

    async def _supervise_withdrawn(self, before: FleetFile, name: str) -> None:
        """Take ``name`` (declared by ``before``) under supervision so that `drop`, called right after, stops
        it as a removal by reload does (its process adopted, its own stop signal and timeout); one that
        cannot be is ended by its marker instead."""
        try:
            inst = await anyio.to_thread.run_sync(self._store.get_by_name, name)
        except (NotFound, NameExists):
            return
        try:
            resolved = before.resolve(name)
            config_hash = self._provisioner.config_hash(inst)
            await self._engine.add(self._runtime(resolved, inst, config_hash=config_hash))
        except Exception as exc:  # a declaration this release cannot run: its processes end anyway
            log.warning("withdrawn_instance_not_supervised", instance=name, error=str(exc))
            await end_processes(self._provisioner.home.root, inst.id, inst.pgid)
            return
        self._records[name] = InstanceRecord(applied=Applied(inst.id, resolved))

    async def _keep_applied(self, fleet: FleetFile) -> None:
        try:
            await anyio.to_thread.run_sync(save_applied, self._run_dir, fleet)
        except OSError as exc:
            log.warning("last_applied_fleet_not_saved", error=exc.strerror or str(exc))

    async def drop(
        self, name: str, *, purge: bool = False, declaration: dict[str, Any] | None = None
    ) -> None:
        """Stop and deprovision ``name``: its directory moves to the trash (with ``declaration``, for a
        restore), or with ``purge`` is deleted."""
        record = self._records.pop(name, None)
        instance_id = record.applied.instance_id if record is not None and record.applied else None
        if instance_id is None:
            with contextlib.suppress(NotFound, NameExists):  # a contested name: no directory is its
                instance_id = self._store.get_by_name(name).id
        if instance_id is None:
            return
        with contextlib.suppress(KeyError, NotFound):
            await self._engine.remove(instance_id)
        try:
            await anyio.to_thread.run_sync(
                lambda: self._provisioner.deprovision(
                    instance_id, purge=purge, name=name, declaration=declaration
                )
            )
        except (OSError, EyrieError) as exc:  # its directory stays where it is: shown as ORPHAN
            log.error("instance_remove_failed", instance=name, instance_id=instance_id, error=str(exc))

    def _failed(self, name: str, exc: Exception, event: str, instance_id: str | None = None) -> None:
        """Record why ``name`` could not be provisioned or updated; one the engine does not run is shown in
        ``error`` with that reason as its ``last_error``."""
        error = str(exc) if isinstance(exc, EyrieError) else f"internal error: {type(exc).__name__}: {exc}"
        self._records.setdefault(name, InstanceRecord()).error = error
        log.error(event, instance=name, error=error)
        if instance_id is None or instance_id in self._engine:
            return

        def failed(i: Instance) -> None:
            i.status, i.status_detail, i.last_error = InstanceStatus.ERROR, "cannot run", error
            i.phase = None  # no actor holds it: the error is the declaration's, see `_runnable_again`
            i.status_updated_at = utcnow()

        try:
            self._store.update(instance_id, failed)
        except (EyrieError, OSError) as exc_saving:
            log.warning("instance_error_not_saved", instance=name, error=str(exc_saving))

    def _reapplied(self, name: str, applied: Applied) -> None:
        """The engine runs ``name`` from a new declaration; an earlier failure stays on record."""
        self._records.setdefault(name, InstanceRecord()).applied = applied

    async def _provision_new(
        self, fleet: FleetFile, index: NameIndex, names: list[str], hold: frozenset[str]
    ) -> dict[str, Instance | Exception]:
        """Provision, in one batch, those of ``names`` the store has no instance of (see `provision_new`)."""
        wanted = [n for n in names if n not in index.instances and n not in index.contested]
        if not wanted:
            return {}

        def running_id(name: str) -> str | None:
            return applied.instance_id if (applied := self.applied(name)) is not None else None

        return await anyio.to_thread.run_sync(
            lambda: provision_new(self._provisioner, fleet, wanted, hold=hold, running_id=running_id)
        )

    async def _adopt_or_provision(
        self,
        resolved: ResolvedInstance,
        index: NameIndex,
        fresh: dict[str, Instance | Exception],
        *,
        rerender: bool = False,
    ) -> bool:
        """Run the stored instance, or the one just provisioned for it (in ``fresh``); False (and the error
        recorded) if that failed, or if the name is contested (two directories hold it, or an unreadable one
        does): never a second one. ``rerender``: its declaration changed while no eyried applied it, so its
        config is rendered again first (a process adopted from the old config then restarts: its launch hash
        differs)."""
        inst = index.instances.get(resolved.name)
        scanned = inst  # as the store's scan read it, handed to the engine unless written since
        try:
            if resolved.name in index.contested:
                raise NameExists(index.contested[resolved.name])
            if inst is None:
                provisioned = fresh[resolved.name]
                if isinstance(provisioned, Exception):
                    raise provisioned
                inst = provisioned
            elif not inst.port:
                inst, scanned = await anyio.to_thread.run_sync(self._give_port, inst, resolved), None
            if rerender:
                (inst, config_hash), scanned = await self._rerender(inst.id, resolved), None
            else:
                self._provisioner.ensure_layout(inst.id)
                config_hash = self._config_hash(inst)
            runtime = self._runtime(resolved, inst, config_hash=config_hash)
            if inst.status is InstanceStatus.ERROR and inst.phase is None:
                await anyio.to_thread.run_sync(self._store.update, inst.id, _runnable_again)
                scanned = None
            await self._engine.add(runtime, scanned)
        except Exception as exc:  # that instance's own failure: the others go on
            self._failed(resolved.name, exc, "instance_provision_failed", inst.id if inst else None)
            return False
        self._records[resolved.name] = InstanceRecord(applied=Applied(inst.id, resolved))
        return True

    def _config_hash(self, inst: Instance) -> str:
        """The hash of the instance's config file as on disk, kept in `config_hashes` with the file's stat key
        taken before the read, as the listing's own `StatCache.get` would keep it."""
        key = file_key(inst.config_path) if inst.config_path else None
        digest = self._provisioner.config_hash(inst)
        if key is not None:
            self.config_hashes.put(inst.config_path, key, digest)
        return digest

    def _runtime(self, resolved: ResolvedInstance, inst: Instance, *, config_hash: str) -> InstanceRuntime:
        """What the engine runs; the instance's ``PROJECT.md`` is made current first, and is part of what
        the process starts from when its framework reads its files only at start."""
        return build_runtime(
            resolved,
            inst,
            self._store,
            config_hash=config_hash,
            eyrie_url=self._provisioner.eyrie_url,
            files_digest=sync_project_file(self._provisioner, resolved, inst),
        )

    def _give_port(self, inst: Instance, resolved: ResolvedInstance) -> Instance:
        """A port for an instance made without one (eyrie's embedded agents), and its config re-rendered
        (at the framework's usual place when eyrie recorded none)."""
        inst = self._provisioner.assign_port(inst)
        if not inst.config_path:
            config_path = str(self._store.dir(inst.id) / resolved.spec.config_file)

            def place(i: Instance) -> None:
                i.config_path = config_path

            inst = self._store.update(inst.id, place)
        persona = None
        if inst.persona_id:
            with contextlib.suppress(NotFound):
                persona = self._provisioner.personas.get(inst.persona_id)
        self._provisioner.rerender(inst, persona=persona)
        return inst

    async def _replace(self, instance_id: str, resolved: ResolvedInstance) -> None:
        """A change that needs a new process: re-render the config, then restart this instance only. The
        instance now runs from the declaration in force: an earlier failure to update it is over."""
        inst, config_hash = await self._rerender(instance_id, resolved)
        await self._engine.update(self._runtime(resolved, inst, config_hash=config_hash))
        await self._record_context(inst, resolved)
        self._records[resolved.name] = InstanceRecord(applied=Applied(instance_id, resolved))

    async def _rerender(self, instance_id: str, resolved: ResolvedInstance) -> tuple[Instance, str]:
        """Record the declaration's framework and model, and render its config again (with its hash)."""
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
            lambda: self._provisioner.rerender(inst, model=model, persona=persona, spec=resolved.spec)
        )
        return inst, config_hash

    async def _secret_changed(self, name: str, resolved: ResolvedInstance) -> bool:
        """An unchanged declaration that names provider secrets runs from their values as they are now: True
        when one changed and the instance was restarted. A secret gone missing is that instance's error; it
        keeps running from the value it has."""
        if not resolved.secrets or (applied := self.applied(name)) is None:
            return False
        try:
            inst = self._engine.get(applied.instance_id)
            runtime = self._runtime(resolved, inst, config_hash=inst.config_hash)
            outcome = await self._engine.update(runtime)
        except Exception as exc:
            self._failed(name, exc, "instance_update_failed", applied.instance_id)
            return False
        self._records[name] = InstanceRecord(applied=applied)
        if outcome == "restarted":
            log.info("instance_secret_changed", instance=name, instance_id=applied.instance_id)
        return outcome == "restarted"

    async def _update_live(self, instance_id: str, resolved: ResolvedInstance) -> str:
        """A change the running process does not see (restart, health, logs, autostart), or a new
        ``PROJECT.md``: applied live, except that a framework reading its files only at start restarts."""
        inst = self._engine.get(instance_id)
        outcome = await self._engine.update(self._runtime(resolved, inst, config_hash=inst.config_hash))
        await self._record_context(inst, resolved)
        self._reapplied(resolved.name, Applied(instance_id, resolved))
        return outcome

    async def _record_context(self, inst: Instance, resolved: ResolvedInstance) -> None:
        """Record the project and parent the declaration gives now in ``instance.json`` (the parent by its
        id once it runs), for ``ps --project`` and eyrie's tools."""
        parent = self.applied(resolved.parent) if resolved.parent else None
        project, parent_id = resolved.project, parent.instance_id if parent is not None else resolved.parent
        if (inst.project_id, inst.parent_id) == (project, parent_id):
            return

        def place(i: Instance) -> None:
            i.project_id, i.parent_id = project, parent_id

        await anyio.to_thread.run_sync(self._store.update, inst.id, place)
        await self._engine.reread(inst.id)


def _runnable_again(inst: Instance) -> None:
    """An ``error`` no actor recorded (``phase`` unset: the declaration could not run, or eyrie wrote it)
    holds nothing once the instance can run: it starts as its desired state says."""
    inst.status, inst.status_detail = InstanceStatus.STOPPED, "ready to run"
    inst.status_updated_at = utcnow()


def _process_changed(before: FleetFile, now: FleetFile) -> frozenset[str]:
    """Names both fleets declare with a change that needs a new process (model, persona, command, …)."""
    if before == now:  # a restart on the fleet last applied: nothing to resolve and compare
        return frozenset()
    try:
        was, after = before.resolve_all(), now.resolve_all()
    except EyrieError:  # a last-applied fleet this release cannot resolve: the launch hash still decides
        return frozenset()
    return frozenset(
        name
        for name in was.keys() & after.keys()
        if was[name].process_fingerprint() != after[name].process_fingerprint()
    )
