"""The composition root: fleet file → provisioner → engine → control API, plus reload and signals.

The daemon is the only writer of runtime state. Fleet-file edits (from the API or by hand) take effect through
one path, `Daemon.reload`, which diffs the new file against the one in force and touches only what changed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from typing import TYPE_CHECKING

import anyio
import structlog

import supervisor
from supervisor.control.app import create_app
from supervisor.control.schema import AddRequest, DaemonStatus, InstanceView, ReloadResult
from supervisor.control.server import TcpSettings, serve
from supervisor.daemon._children import InheritedChildren
from supervisor.daemon.events import EventHub
from supervisor.daemon.lock import DaemonLock
from supervisor.daemon.metrics import render_metrics
from supervisor.daemon.runtime import build_runtime
from supervisor.daemon.views import instance_view, missing_view, status_summary
from supervisor.engine import Engine
from supervisor.engine.events import Event
from supervisor.engine.process import current_boot_id
from supervisor.errors import EyrieError, FleetFileError, NotFound
from supervisor.fleet import (
    FleetFile,
    InstanceDecl,
    ResolvedInstance,
    add_instance,
    diff_fleets,
    load_fleet,
    remove_instance,
    set_autostart,
)
from supervisor.frameworks.registry import builtin_frameworks
from supervisor.models import CreateRequest, Instance, utcnow
from supervisor.personas import PersonaCatalog
from supervisor.provision import Provisioner
from supervisor.store import Store
from supervisor.systemd.notify import Notifier, watchdog_loop

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from supervisor.paths import Home

__all__ = ["SIGNALS", "Daemon"]

log = structlog.get_logger("supervisor.daemon")

SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
"""What the daemon acts on: SIGHUP reloads, SIGTERM and SIGINT stop the fleet, SIGUSR2 re-executes it."""
_CARRIED = frozenset({signal.SIGTERM, signal.SIGINT})
"""Requests a re-exec must not lose: the next image acts on them (it reloads anyway: it reads the file)."""
_SIGNAL_SETTLE = 0.01
"""Seconds for a signal the kernel delivered just before it was blocked to reach the receiver (its handler
runs on a later turn of the event loop)."""


class Daemon:
    """One daemon per home; implements `supervisor.control.target.ControlTarget` for the API."""

    def __init__(
        self,
        home: Home,
        *,
        fleet_path: Path | None = None,
        dev: bool = False,
        reexecuted_at: float | None = None,
    ) -> None:
        """``reexecuted_at`` (``time.monotonic()``) says this process image replaced an earlier eyried that
        began re-executing at that moment: the children it left are this process's to reap."""
        self.home = home
        self.fleet_path = fleet_path or home.fleet_file
        self.dev = dev
        self.store = Store(home)
        self.hub = EventHub()
        self.notifier = Notifier.from_env()
        self.started_at = utcnow()
        self.fleet = FleetFile(version=1)
        self.last_reload: ReloadResult | None = None
        self.reexecuted_at = reexecuted_at
        self.reexec_requested = False
        self.reexec_began: float | None = None
        self.carried_signals: list[signal.Signals] = []
        self._ids: dict[str, str] = {}  # managed instance name → id
        self._applied: dict[str, ResolvedInstance] = {}  # what each managed instance runs from
        self._errors: dict[str, str] = {}  # declared name → why it could not be provisioned
        self._lock = anyio.Lock()  # one fleet change at a time
        self._personas: PersonaCatalog | None = None
        self._provisioner: Provisioner | None = None
        self._engine: Engine | None = None
        self._summary = ""
        self._disk_fleet: tuple[tuple[int, int, int], FleetFile | None] | None = None
        self._config_hashes: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._inherited: InheritedChildren | None = None

    # --- lifecycle

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until SIGTERM/SIGINT (stop the fleet) or SIGUSR2 (leave it running for a re-exec)."""
        with anyio.open_signal_receiver(*SIGNALS) as signals:
            # An image started by a re-exec has SIGNALS blocked, so that what arrived while it started waits,
            # pending, for these handlers (see `supervisor.daemon.main`).
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            lock = DaemonLock(self.home)
            lock.acquire()
            try:
                await self._serve(signals, task_status)
            finally:
                lock.release(keep_pid_file=self.reexec_requested)
            if self.reexec_requested:
                await self._hold_signals(signals)

    async def _hold_signals(self, signals: AsyncIterator[int]) -> None:
        """Block SIGNALS for the next image, and keep the stop requests that arrived since the re-exec began.

        A signal delivered from now on stays pending across ``execv`` and reaches the next image's handlers.
        One that already reached ours is taken from the receiver; `supervisor.daemon.main` raises it again.
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        with anyio.move_on_after(_SIGNAL_SETTLE):
            async for signum in signals:
                if signum in _CARRIED and signum not in self.carried_signals:
                    self.carried_signals.append(signal.Signals(signum))

    async def _serve(self, signals: AsyncIterator[int], task_status: anyio.abc.TaskStatus[None]) -> None:
        if self.reexecuted_at is not None:
            self._inherited = InheritedChildren.take(self._watched_pids)
        try:
            await self._serve_fleet(signals, task_status)
        finally:
            if self._inherited is not None:
                self._inherited.close()
                self._inherited = None

    async def _serve_fleet(
        self, signals: AsyncIterator[int], task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        fleet = await self._load_initial()
        self._provisioner = Provisioner(self.store, self.home)
        self._engine = Engine(self.store, boot_id=current_boot_id(), on_event=self._on_event)
        log.info("daemon_starting", home=str(self.home.root), pid=os.getpid())
        async with anyio.create_task_group() as tg:
            await tg.start(self._engine.run)
            # The API comes up first, so its event history has the whole start-up and `eyriectl ps` answers
            # during a long one; READY=1 still waits until the fleet is started or adopted.
            await tg.start(
                functools.partial(
                    serve, create_app(self), socket_path=self.home.socket_path, tcp=self._tcp_settings()
                )
            )
            async with self._lock:
                await self._apply(fleet)
            if self._inherited is not None:
                tg.start_soon(self._inherited.watch)
            tg.start_soon(watchdog_loop, self.notifier)
            self.notifier.ready()
            self._publish_status()
            self._log_ready()
            task_status.started()
            async for signum in signals:
                if signum == signal.SIGHUP:
                    tg.start_soon(self.reload)
                    continue
                self.reexec_requested = signum == signal.SIGUSR2
                break
            if self.reexec_requested:
                self.reexec_began = time.monotonic()
                # No STOPPING=1: the unit stays active, the pid stays the same; the next image says READY=1.
                self.notifier.reloading()
                self.notifier.status("re-executing in place; the agents keep running")
                log.info("daemon_reexec", pid=os.getpid())
                await self._engine.detach()
            else:
                self.notifier.stopping()
                log.info("daemon_stopping", signal=signal.Signals(signum).name)
                await self._engine.shutdown()
            tg.cancel_scope.cancel()
        log.info("daemon_stopped")

    def _log_ready(self) -> None:
        extra = {}
        if self.reexecuted_at is not None:
            extra["reexec_seconds"] = round(time.monotonic() - self.reexecuted_at, 3)
        log.info("daemon_ready", instances=len(self._ids), socket=str(self.home.socket_path), **extra)

    def _watched_pids(self) -> set[int]:
        """The pids the engine records as its instances' processes right now."""
        if self._engine is None:
            return set()
        return {inst.pid for inst in self._engine.instances() if inst.pid}

    def _tcp_settings(self) -> TcpSettings | None:
        tcp = self.fleet.daemon.control_tcp
        if not tcp.enabled:
            return None
        return TcpSettings(port=tcp.port or 0, token_file=tcp.token_path(self.home.root), host=tcp.host)

    async def _load_initial(self) -> FleetFile:
        if not self.fleet_path.exists():
            log.warning("fleet_file_missing", path=str(self.fleet_path), hint="run `eyriectl init`")
            return FleetFile(version=1)
        return await anyio.to_thread.run_sync(load_fleet, self.fleet_path)

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the daemon is not running"
        return self._engine

    @property
    def provisioner(self) -> Provisioner:
        assert self._provisioner is not None, "the daemon is not running"
        return self._provisioner

    # --- applying the fleet

    async def _apply(
        self, new: FleetFile, *, hold: frozenset[str] = frozenset(), keep: frozenset[str] = frozenset()
    ) -> ReloadResult:
        """Make the running fleet match ``new``.

        ``hold`` names added instances that must not start yet; ``keep`` removed ones whose files stay.
        """
        started = time.monotonic()
        diff = diff_fleets(self.fleet if self._applied or self._ids else None, new)
        result = ReloadResult(ok=True, at=utcnow())
        self.fleet = new
        stored: dict[str, Instance] = {}
        if diff.added or diff.process_changed:  # a no-change reload reads no instance file
            stored = {inst.name: inst for inst in await anyio.to_thread.run_sync(self.store.list)}
        for name in diff.removed:
            await self._drop(name, keep_files=name in keep)
            result.removed.append(name)
        for name in diff.added:
            if await self._adopt_or_provision(new.resolve(name), stored.get(name), hold=name in hold):
                result.added.append(name)
        for name in diff.process_changed:
            if name in self._ids:
                try:
                    await self._replace(new.resolve(name))
                except EyrieError as exc:
                    self._errors[name] = str(exc)
                    log.error("instance_update_failed", instance=name, error=str(exc))
                    continue
                result.restarted.append(name)
            elif await self._adopt_or_provision(new.resolve(name), stored.get(name), hold=False):
                result.added.append(name)
        for name in diff.policy_changed:
            if name in self._ids:
                resolved = new.resolve(name)
                inst = self.engine.get(self._ids[name])
                await self.engine.update(
                    build_runtime(resolved, inst, self.store, config_hash=inst.config_hash)
                )
                self._applied[name] = resolved
                result.updated.append(name)
        result.unchanged = list(diff.unchanged)
        result.seconds = time.monotonic() - started
        return result

    async def _adopt_or_provision(
        self, resolved: ResolvedInstance, inst: Instance | None, *, hold: bool
    ) -> bool:
        name = resolved.name
        try:
            if inst is None:
                inst = await anyio.to_thread.run_sync(self._provision, resolved, hold)
            config_hash = self.provisioner.config_hash(inst)
            runtime = build_runtime(resolved, inst, self.store, config_hash=config_hash)
        except EyrieError as exc:
            self._errors[name] = str(exc)
            log.error("instance_provision_failed", instance=name, error=str(exc))
            return False
        self._errors.pop(name, None)
        self._ids[name] = inst.id
        self._applied[name] = resolved
        await self.engine.add(runtime)
        return True

    def _provision(self, resolved: ResolvedInstance, hold: bool) -> Instance:
        persona = self.provisioner.personas.get(resolved.persona) if resolved.persona else None
        parent_id = self._ids.get(resolved.parent, resolved.parent) if resolved.parent else ""
        request = CreateRequest(
            name=resolved.name,
            framework=resolved.framework,
            persona_id=resolved.persona,
            hierarchy_role=resolved.role,
            project_id=resolved.project,
            parent_id=parent_id,
            model=resolved.model,
            auto_start=resolved.autostart,
            project_name=resolved.project,
        )
        provisioner = Provisioner(
            self.store,
            self.home,
            frameworks={**builtin_frameworks(), resolved.framework: resolved.spec},
            personas=self.provisioner.personas,
        )
        inst = provisioner.provision(request, persona)
        if hold:
            boot_id = current_boot_id()

            def held(i: Instance) -> None:
                i.desired = "stopped"
                i.desired_boot_id = boot_id

            inst = self.store.update(inst.id, held)
        return inst

    async def _replace(self, resolved: ResolvedInstance) -> None:
        """A change that needs a new process: re-render the config, then restart this instance only."""
        instance_id = self._ids[resolved.name]
        persona = self.provisioner.personas.get(resolved.persona) if resolved.persona else None
        framework, model = resolved.framework, resolved.model
        config_file = resolved.spec.config_file

        def describe(i: Instance) -> None:
            if i.framework != framework:
                i.framework = framework
                i.config_path = str(self.store.dir(i.id) / config_file)
            if model:
                i.model = model

        inst = await anyio.to_thread.run_sync(self.store.update, instance_id, describe)
        config_hash = await anyio.to_thread.run_sync(
            lambda: self.provisioner.rerender(inst, model=model, persona=persona)
        )
        await self.engine.update(build_runtime(resolved, inst, self.store, config_hash=config_hash))
        self._applied[resolved.name] = resolved

    async def _drop(self, name: str, *, keep_files: bool) -> None:
        instance_id = self._ids.pop(name, None)
        self._applied.pop(name, None)
        self._errors.pop(name, None)
        if instance_id is None:
            with contextlib.suppress(NotFound):
                instance_id = self.store.get_by_name(name).id
        if instance_id is None:
            return
        with contextlib.suppress(KeyError, NotFound):
            await self.engine.remove(instance_id)
        await anyio.to_thread.run_sync(
            lambda: self.provisioner.deprovision(instance_id, keep_files=keep_files)
        )

    # --- ControlTarget: reading

    def list_instances(self) -> list[InstanceView]:
        """Managed, MISSING and ORPHAN instances, judged against ``fleet.yaml`` as it is on disk now."""
        declared = self._declared_now()
        views = [self._view(decl.name, decl, declared) for decl in declared.instances]
        names = {decl.name for decl in declared.instances}
        views += [self._view(name, None, declared) for name in self._ids if name not in names]
        managed = set(self._ids.values())
        for instance_id in self._stored_ids() - managed:
            with contextlib.suppress(EyrieError):
                inst = self.store.get(instance_id)
                if inst.name not in names:
                    views.append(instance_view(inst, decl=None, drift=False))
        return views

    def get_instance(self, ref: str) -> InstanceView:
        name = ref if ref in self._ids else next((n for n, i in self._ids.items() if i == ref), None)
        if name is not None:
            declared = self._declared_now()
            return self._view(name, declared.decl(name) if name in declared.names() else None, declared)
        for view in self.list_instances():
            if ref in (view.name, view.id):
                return view
        raise NotFound(f"instance {ref!r} not found")

    def _view(self, name: str, decl: InstanceDecl | None, declared: FleetFile) -> InstanceView:
        instance_id = self._ids.get(name)
        if instance_id is None:
            assert decl is not None
            with contextlib.suppress(NotFound):  # provisioned, declared by hand since the last reload
                return instance_view(self.store.get_by_name(name), decl=decl, drift=True)
            return missing_view(decl, self._errors.get(name, ""))
        inst = self.engine.get(instance_id)
        return instance_view(inst, decl=decl, drift=decl is not None and self._drifted(name, inst, declared))

    def _drifted(self, name: str, inst: Instance, declared: FleetFile) -> bool:
        """The process runs from settings other than the file's now, or its config file was edited."""
        applied = self._applied.get(name)
        if applied is None:
            return False
        if declared.resolve(name).process_fingerprint() != applied.process_fingerprint():
            return True
        return bool(inst.config_hash) and self._config_hash(inst) != inst.config_hash

    def _declared_now(self) -> FleetFile:
        """``fleet.yaml`` as on disk now (re-read only when it changed); the applied one if it is invalid."""
        try:
            st = self.fleet_path.stat()
        except OSError:
            return self.fleet
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._disk_fleet is None or self._disk_fleet[0] != key:
            try:
                self._disk_fleet = (key, load_fleet(self.fleet_path))
            except EyrieError:
                self._disk_fleet = (key, None)
        return self._disk_fleet[1] or self.fleet

    def _config_hash(self, inst: Instance) -> str:
        """The config file's hash, recomputed only when the file changed."""
        try:
            st = os.stat(inst.config_path)
        except OSError:
            return ""
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._config_hashes.get(inst.id)
        if cached is None or cached[0] != key:
            cached = (key, self.provisioner.config_hash(inst))
            self._config_hashes[inst.id] = cached
        return cached[1]

    def _stored_ids(self) -> set[str]:
        try:
            return {e.name for e in os.scandir(self.store.root) if e.is_dir() and not e.name.startswith(".")}
        except FileNotFoundError:
            return set()

    def status(self) -> DaemonStatus:
        counts: dict[str, int] = {}
        for inst in self.engine.instances():
            counts[inst.status.value] = counts.get(inst.status.value, 0) + 1
        problems = [f"{p.path}: {p.reason}" for p in self.store.problems()]
        problems += [f"{name}: {error}" for name, error in self._errors.items()]
        if self.last_reload is not None and not self.last_reload.ok:
            problems.append(f"last reload rejected: {self.last_reload.error}")
        now = utcnow()
        return DaemonStatus(
            pid=os.getpid(),
            version=supervisor.__version__,
            home=str(self.home.root),
            fleet_file=str(self.fleet_path),
            started_at=self.started_at,
            uptime_seconds=(now - self.started_at).total_seconds(),
            instances=counts,
            last_reload=self.last_reload,
            problems=problems,
        )

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        return self.hub.subscribe()

    def metrics_text(self) -> bytes:
        return render_metrics(self.list_instances)

    # --- ControlTarget: acting

    def _id(self, ref: str) -> str:
        if ref in self._ids:
            return self._ids[ref]
        if ref in self._ids.values():
            return ref
        raise NotFound(f"instance {ref!r} is not managed by this daemon (see `eyriectl ps`)")

    async def start(self, ref: str, *, wait: bool = False) -> InstanceView:
        await self.engine.start(self._id(ref), wait=wait)
        return self.get_instance(ref)

    async def stop(self, ref: str, *, wait: bool = False) -> InstanceView:
        await self.engine.stop(self._id(ref), wait=wait)
        return self.get_instance(ref)

    async def restart(self, ref: str, *, wait: bool = False) -> InstanceView:
        await self.engine.restart(self._id(ref), wait=wait)
        return self.get_instance(ref)

    async def reload(self) -> ReloadResult:
        """Re-read the fleet file; an invalid file changes nothing and is reported."""
        self.notifier.reloading()
        try:
            async with self._lock:
                result = await self._reload_locked()
        finally:
            self.notifier.ready()
            self._publish_status()
        return result

    async def _reload_locked(
        self, *, hold: frozenset[str] = frozenset(), keep: frozenset[str] = frozenset()
    ) -> ReloadResult:
        try:
            new = await anyio.to_thread.run_sync(load_fleet, self.fleet_path)
        except EyrieError as exc:
            result = ReloadResult(ok=False, error=str(exc), at=utcnow())
            log.error("reload_rejected", error=str(exc), path=str(self.fleet_path))
        else:
            result = await self._apply(new, hold=hold, keep=keep)
            log.info(
                "reload_applied",
                added=result.added,
                removed=result.removed,
                restarted=result.restarted,
                updated=result.updated,
                unchanged=len(result.unchanged),
                seconds=round(result.seconds, 4),
            )
        self.last_reload = result
        self._on_event_reload(result)
        return result

    async def create_instance(self, request: AddRequest) -> InstanceView:
        decl = InstanceDecl(
            name=request.name,
            framework=request.framework,
            role=request.role,
            persona=request.persona,
            project=request.project,
            parent=request.parent,
            model=request.model,
            autostart=request.enable,
        )
        async with self._lock:
            await anyio.to_thread.run_sync(add_instance, self.fleet_path, decl)
            result = await self._reload_locked(hold=frozenset() if request.start else frozenset({decl.name}))
            if not result.ok:
                raise FleetFileError(result.error)
            if request.name in self._errors:  # not provisioned: take the declaration back out
                error = self._errors[request.name]
                await anyio.to_thread.run_sync(remove_instance, self.fleet_path, decl.name)
                await self._reload_locked()
                raise EyrieError(error)
        if request.start and not request.enable:
            await self.engine.start(self._id(request.name))
        return self.get_instance(request.name)

    async def delete_instance(self, ref: str, *, keep_files: bool) -> None:
        view = self.get_instance(ref)
        async with self._lock:
            if any(d.name == view.name for d in self.fleet.instances):
                await anyio.to_thread.run_sync(remove_instance, self.fleet_path, view.name)
                await self._reload_locked(keep=frozenset({view.name}) if keep_files else frozenset())
            else:  # an orphan: not declared, so no reload removes it
                await self._drop(view.name, keep_files=keep_files)

    async def enable(self, ref: str) -> InstanceView:
        return await self._set_autostart(ref, True)

    async def disable(self, ref: str) -> InstanceView:
        return await self._set_autostart(ref, False)

    async def _set_autostart(self, ref: str, enabled: bool) -> InstanceView:
        name = self.get_instance(ref).name
        async with self._lock:
            await anyio.to_thread.run_sync(set_autostart, self.fleet_path, name, enabled)
            await self._reload_locked()
        return self.get_instance(name)

    # --- events

    def _on_event(self, event: Event) -> None:
        self.hub.publish(event)
        self._publish_status()
        if self._inherited is not None and self._inherited.waiting:
            self._inherited.reap()

    def _on_event_reload(self, result: ReloadResult) -> None:
        detail = "applied" if result.ok else f"rejected: {result.error}"
        self.hub.publish(
            Event(time=utcnow(), event="reload", detail=detail, data=result.model_dump(mode="json"))
        )

    def _publish_status(self) -> None:
        if self._engine is None or not self.notifier.enabled:
            return
        summary = status_summary(self._engine.instances())
        if summary != self._summary:
            self._summary = summary
            self.notifier.status(summary)
