"""The composition root: fleet file → provisioner → engine → control API, plus reload and signals. The only
writer of runtime state; fleet-file edits (API or by hand) take effect through one path, `Daemon.reload`
(`supervisor.daemon.reconciler`: only what changed); the API lists from `supervisor.daemon.inventory`."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from functools import cached_property
from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.control._reload import ReloadResult
from supervisor.control.hub import EventHub
from supervisor.daemon._fleet_ready import announce_fleet_ready, log_ready
from supervisor.daemon._gc import settle_after, settle_soon
from supervisor.daemon._listeners import ADOPTION_GRACE, START_GRACE, Listeners
from supervisor.daemon._notify import Notifications
from supervisor.daemon._signals import SignalListener, next_ending
from supervisor.daemon._startup import never, nothing_to_adopt, start_up
from supervisor.daemon._status_line import StatusLine
from supervisor.daemon._trash_retention import keep_trash
from supervisor.daemon._unreadable import stop_unreadable
from supervisor.daemon.lock import DaemonLock
from supervisor.daemon.outcome import Outcome, Reexec, Stopped
from supervisor.daemon.reconciler import Reconciler
from supervisor.daemon.relocation import PortRelocator
from supervisor.engine import Engine, pidfd
from supervisor.engine.events import Event
from supervisor.engine.process import current_boot_id
from supervisor.errors import NotFound
from supervisor.fleet import FleetFile
from supervisor.logconfig import set_log_level
from supervisor.models import utcnow
from supervisor.provision import Provisioner
from supervisor.stop_journal import apply_journals
from supervisor.store import Store
from supervisor.systemd.notify import Notifier, watchdog_loop

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator
    from pathlib import Path

    from supervisor.control.schema import AddRequest, DaemonStatus, InstanceDetail, InstanceView
    from supervisor.daemon._children import InheritedChildren
    from supervisor.daemon._edits import FleetEdits
    from supervisor.daemon.inventory import Inventory
    from supervisor.paths import Home

__all__ = ["Daemon"]

log = structlog.get_logger("supervisor.daemon")


class Daemon:
    """One daemon per home; implements `supervisor.control.target.ControlTarget` for the API."""

    def __init__(
        self,
        home: Home,
        *,
        fleet_path: Path | None = None,
        reexecuted_at: float | None = None,
        log_level: str | None = None,
    ) -> None:
        """``reexecuted_at`` (``time.monotonic()``) says this process image replaced an earlier eyried that
        began re-executing at that moment: the children it left are this process's to reap. ``log_level``
        (from the command line) overrides the fleet file's ``daemon.log_level``."""
        self.home = home
        self.fleet_path = fleet_path or home.fleet_file
        self.store = Store(home)
        self.hub = EventHub(keep_until_served=True)  # the API may be served after the start-up
        self.notifier = Notifier.from_env()
        self.started_at = utcnow()
        self.last_reload: ReloadResult | None = None
        self.reexecuted_at = reexecuted_at
        self.provisioner = Provisioner(self.store, home)
        self.engine = Engine(
            self.store,
            boot_id=current_boot_id(),
            on_event=self._on_event,
            relocate=lambda rt, holder: self.relocator(rt, holder),
        )
        self.reconciler = Reconciler(self.fleet_path, self.store, self.provisioner, self.engine)
        self.relocator = PortRelocator(self.provisioner, self.reconciler)
        self._lock = anyio.Lock()  # one fleet change at a time
        self._status_line = StatusLine(self.notifier, self.engine.all_written)
        self._inherited: InheritedChildren | None = None
        self._log_level = log_level

    # What only the API reads or edits is built, and its modules imported, on the first request, after the
    # fleet has started: none of it is on the path to the first spawn (tests/test_imports_start.py).

    @cached_property
    def inventory(self) -> Inventory:
        from supervisor.daemon.inventory import Inventory

        return Inventory(self.reconciler, self.engine, self.store, self.provisioner)

    @cached_property
    def _edits(self) -> FleetEdits:
        from supervisor.daemon._edits import FleetEdits

        return FleetEdits(self.fleet_path, self._lock, self.reconciler, self._reload_locked)

    # --- lifecycle

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> Outcome:
        """Run until SIGTERM/SIGINT (stop the fleet) or SIGUSR2 (leave it running for a re-exec)."""
        listener = SignalListener()
        reexec_began: float | None = None
        try:
            with listener:
                reexec_began = await self._serve(listener, task_status)
        finally:
            if reexec_began is None:  # stopped: eyried exits; a test process goes on as it was
                listener.release()
        if reexec_began is None:
            return Stopped()
        # What arrives from now on stays pending, blocked, for the next image.
        return Reexec(began=reexec_began, carried_signals=listener.carried())

    async def _serve(
        self, signals: AsyncIterable[int], task_status: anyio.abc.TaskStatus[None]
    ) -> float | None:
        """Serve the fleet; return when a re-exec began (``time.monotonic()``), or None after a stop."""
        pidfd.require()  # before anything is adopted or started: without pidfds every watch would fail
        lock = DaemonLock(self.home)
        lock.acquire()
        if self.reexecuted_at is not None:
            from supervisor.daemon._children import InheritedChildren  # a re-executed image's only

            self._inherited = InheritedChildren.take(
                lambda: {i.pid for i in self.engine.instances() if i.pid}
            )
        reexec_began = None
        adopt_first = self.reexecuted_at is not None or lock.predecessor_left  # see `_listeners`
        try:
            reexec_began = await self._serve_fleet(signals, task_status, adopt_first=adopt_first)
        finally:
            if self._inherited is not None:
                self._inherited.close()
                self._inherited = None
            lock.release(keep_pid_file=reexec_began is not None)
        return reexec_began

    async def _serve_fleet(
        self, signals: AsyncIterable[int], task_status: anyio.abc.TaskStatus[None], *, adopt_first: bool
    ) -> float | None:
        initial = await self.reconciler.initial()
        self._apply_daemon_settings(initial.fleet)
        log.info("daemon_starting", home=str(self.home.root), pid=os.getpid())
        async with Listeners(self, initial.fleet) as listeners, anyio.create_task_group() as tg:
            await tg.start(self.engine.run)
            await listeners.bind()  # before the fleet: agents get EYRIE_URL, requests wait in the backlog
            announced = anyio.Event()
            if not adopt_first:  # a long start is served before it is over
                tg.start_soon(functools.partial(listeners.serve, tg, after=announced, within=START_GRACE))
            await tg.start(Notifications(lambda: self.reconciler.fleet, self.home.root).run, self.subscribe)
            await anyio.to_thread.run_sync(apply_journals, self.store)  # a stop a crash cut short
            await stop_unreadable(self.store)
            start = functools.partial(self.reconciler.start, initial)
            boot = self.engine.boot_id
            cut = functools.partial(nothing_to_adopt, self.store, self.engine.instances, boot)
            startup = await start_up(signals, self._lock, start, cut if self.reexecuted_at is None else never)
            tg.start_soon(announce_fleet_ready, self.engine, self.hub.publish, self.reexecuted_at, announced)
            tg.start_soon(settle_after, announced)
            if startup.result is not None and not startup.result.ok:
                self.last_reload = startup.result  # `status` shows it until a reload succeeds
            # the fleet comes to rest before the HTTP stack's imports hold the loop up
            grace = ADOPTION_GRACE if adopt_first else START_GRACE
            await listeners.serve(tg, after=None if startup.ending else announced, within=grace)
            if self._inherited is not None:
                tg.start_soon(self._inherited.watch)
            tg.start_soon(watchdog_loop, self.notifier)
            tg.start_soon(keep_trash, self.home, lambda: self.reconciler.fleet.daemon.trash_retention)
            self.notifier.ready()
            self._status_line.publish()
            log_ready(len(self.reconciler.managed()), self.home.socket_path, self.reexecuted_at)
            task_status.started()
            if startup.reload:
                tg.start_soon(self.reload)  # a SIGHUP during the start-up
            reload = functools.partial(tg.start_soon, self.reload)
            signum = startup.ending or await next_ending(signals, reload)
            reexec_began = await self._leave(signum)
            tg.cancel_scope.cancel()
        log.info("daemon_stopped")
        return reexec_began

    async def _leave(self, signum: signal.Signals) -> float | None:
        """SIGUSR2: leave the agents running for the next image (return when it began); else stop them."""
        if signum != signal.SIGUSR2:
            self.notifier.stopping()
            log.info("daemon_stopping", signal=signum.name)
            await self.engine.shutdown()
            return None
        began = time.monotonic()
        # No STOPPING=1: the unit stays active, the pid stays the same; the next image says READY=1.
        self.notifier.reloading()
        self.notifier.status("re-executing in place; the agents keep running")
        log.info("daemon_reexec", pid=os.getpid())
        await self.engine.detach()
        return began

    def _apply_daemon_settings(self, fleet: FleetFile) -> None:
        """The settings of eyried that apply live: the log level (unless given on the command line)."""
        set_log_level(self._log_level or fleet.daemon.log_level)

    # --- ControlTarget: reading

    async def list_instances(self) -> list[InstanceView]:
        """Managed, MISSING and ORPHAN instances, judged against ``fleet.yaml`` as it is on disk now."""
        return await self.inventory.instances()

    async def get_instance(self, ref: str) -> InstanceView:
        return await self.inventory.instance(ref)

    def status(self) -> DaemonStatus:
        return self.inventory.status(self.home, started_at=self.started_at, last_reload=self.last_reload)

    def subscribe(
        self, *, kept: bool = False
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        return self.hub.subscribe(kept=kept)

    async def instance_status(self, ref: str) -> InstanceDetail:
        return await self.inventory.detail(ref)

    async def metrics_text(self) -> bytes:
        from supervisor.daemon.metrics import render_metrics

        return render_metrics(await self.list_instances(), self.inventory.reloads)

    # --- ControlTarget: acting

    def _id(self, ref: str) -> str:
        found = self.reconciler.find(ref)
        if found is None:
            raise NotFound(f"instance {ref!r} is not managed by this daemon (see `eyriectl ps`)")
        return found[1].instance_id

    async def start(self, ref: str, *, wait: bool = False) -> InstanceView:
        await self.engine.start(self._id(ref), wait=wait)
        return await self.get_instance(ref)

    async def stop(self, ref: str, *, wait: bool = False) -> InstanceView:
        await self.engine.stop(self._id(ref), wait=wait)
        return await self.get_instance(ref)

    async def restart(self, ref: str, *, wait: bool = False) -> InstanceView:
        await self.engine.restart(self._id(ref), wait=wait)
        return await self.get_instance(ref)

    async def reload(self) -> ReloadResult:
        """Re-read the fleet file; an invalid file changes nothing and is reported."""
        self.notifier.reloading()
        try:
            async with self._lock:
                result = await self._reload_locked()
        finally:
            self.notifier.ready()
            self._status_line.publish()
        return result

    async def plan_reload(self) -> ReloadResult:
        from supervisor.daemon._plan import plan_reload

        async with self._lock:  # what a reload would do now (`reload --dry-run`); nothing is applied
            return await plan_reload(self.reconciler)

    async def _reload_locked(
        self, *, hold: frozenset[str] = frozenset(), purge: frozenset[str] = frozenset()
    ) -> ReloadResult:
        try:
            result = await self.reconciler.reload(hold=hold, purge=purge)
        except Exception as exc:  # a bug must not end the daemon that supervises every agent
            log.exception("reload_failed", path=str(self.fleet_path))
            result = ReloadResult(ok=False, error=f"internal error while reloading: {exc!r}", at=utcnow())
        if result.ok:
            self._apply_daemon_settings(self.reconciler.fleet)
            settle_soon()
        self.last_reload = self.inventory.reloads.count(result)
        detail = "applied" if result.ok else f"rejected: {result.error}"
        self.hub.publish(
            Event(time=utcnow(), event="reload", detail=detail, data=result.model_dump(mode="json"))
        )
        return result

    async def create_instance(self, request: AddRequest) -> InstanceView:
        await self._edits.add(request)
        if request.start and not request.enable:
            await self.engine.start(self._id(request.name))
        return await self.get_instance(request.name)

    async def delete_instance(self, ref: str, *, purge: bool = False) -> None:
        await self._edits.remove((await self.get_instance(ref)).name, purge=purge)

    async def enable(self, ref: str) -> InstanceView:
        return await self._set_autostart(ref, True)

    async def disable(self, ref: str) -> InstanceView:
        return await self._set_autostart(ref, False)

    async def _set_autostart(self, ref: str, enabled: bool) -> InstanceView:
        name = (await self.get_instance(ref)).name
        await self._edits.set_autostart(name, enabled)
        return await self.get_instance(name)

    # --- events

    def _on_event(self, event: Event) -> None:
        self.hub.publish(event)
        self._status_line.stale()
        if self._inherited is not None and self._inherited.waiting:
            self._inherited.reap()
