"""The read side of the daemon: every instance it knows, judged against ``fleet.yaml`` as it is on disk now.

A hand edit shows in ``eyriectl ps`` before any reload: a declared instance that is not provisioned is
MISSING, a provisioned one that is no longer declared is an ORPHAN, and one whose process runs from other
settings than the file's (or whose config file was edited) has DRIFT.

Every file it reads (the fleet file, config files, ``instance.json``) is read in a worker thread: whatever
sits in the home, a listing never stalls the event loop that supervises the fleet.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import Counter
from typing import TYPE_CHECKING

import anyio.to_thread

import supervisor
from supervisor.control._listing import Listing
from supervisor.control.schema import DaemonStatus, ReloadResult
from supervisor.daemon._instance_detail import instance_detail
from supervisor.daemon._statcache import StatCache
from supervisor.daemon._view_cache import ViewCache
from supervisor.daemon.metrics import ReloadCounts
from supervisor.daemon.views import instance_view, missing_view
from supervisor.errors import EyrieError, NotFound
from supervisor.fleet import FleetFile, load_fleet
from supervisor.models import utcnow
from supervisor.sandbox.confine import landlock_abi, missing_features

if TYPE_CHECKING:
    from datetime import datetime

    from supervisor.control._listing import RowJSON
    from supervisor.control.schema import InstanceDetail, InstanceView
    from supervisor.daemon.reconciler import Applied, Reconciler
    from supervisor.engine import Engine
    from supervisor.fleet import InstanceDecl, ResolvedInstance
    from supervisor.models import Instance
    from supervisor.paths import Home
    from supervisor.provision import Provisioner
    from supervisor.store import NameIndex, Store

__all__ = ["Inventory"]


class Inventory:
    """Managed, MISSING and ORPHAN instances as `InstanceView`s; reads only, changes nothing."""

    def __init__(
        self, reconciler: Reconciler, engine: Engine, store: Store, provisioner: Provisioner
    ) -> None:
        self._reconciler = reconciler
        self._engine = engine
        self._store = store
        self._provisioner = provisioner
        self._fleets = StatCache[FleetFile | None]()
        self._fleets_for: FleetFile | None = None  # the applied fleet the cached ones were compared with
        self._config_hashes = reconciler.config_hashes  # what an adoption hashed is not hashed again
        self._settings_drift: dict[str, tuple[FleetFile, ResolvedInstance, bool]] = {}
        self._views = ViewCache()
        self.reloads = ReloadCounts()
        """Reloads since the daemon started (the daemon counts each), for ``/metrics``."""

    async def instances(self) -> list[InstanceView]:
        declared = await self._declared_now()
        managed = self._reconciler.managed()
        self._settings_drift = {n: kept for n, kept in self._settings_drift.items() if n in managed}
        self._views.keep_only([a.instance_id for a in managed.values()])
        names = {decl.name for decl in declared.instances}
        entries: list[tuple[str, InstanceDecl | None]] = [(d.name, d) for d in declared.instances]
        entries += [(name, None) for name in managed if name not in names]
        hashes = await self._config_hashes_now([name for name, decl in entries if decl is not None])
        unapplied = [name for name in names if name not in managed]
        stored = await anyio.to_thread.run_sync(self._store.index) if unapplied else None
        views = Listing()
        now = utcnow()  # one clock read for every row's uptime
        for name, decl in entries:
            views.add(*self._view(name, decl, declared, hashes, stored, now))
        unmanaged = self._stored_ids() - {a.instance_id for a in managed.values()}
        if unmanaged:
            views += await anyio.to_thread.run_sync(self._orphans, names, unmanaged)
        return views

    async def instance(self, ref: str) -> InstanceView:
        """By name or id; a managed instance is found without listing the others."""
        found = self._reconciler.find(ref)
        if found is not None:
            name = found[0]
            declared = await self._declared_now()
            decl = declared.decl(name) if name in declared.names() else None
            view, _ = self._view(name, decl, declared, await self._config_hashes_now([name]), None)
            return view
        for view in await self.instances():
            if ref in (view.name, view.id):
                return view
        raise NotFound(f"instance {ref!r} not found")

    async def detail(self, ref: str) -> InstanceDetail:
        """One instance on one screen (``eyriectl status NAME``)."""
        return await instance_detail(await self.instance(ref), self._engine)

    def status(self, home: Home, *, started_at: datetime, last_reload: ReloadResult | None) -> DaemonStatus:
        """The daemon's one-screen answer: counts per status and every problem it knows of."""
        instances = self._engine.all_written()
        counts = Counter(inst.status.value for inst in instances)
        confined = Counter(inst.sandbox for inst in instances if inst.pid is not None and inst.sandbox)
        problems = [f"{p.path}: {p.reason}" for p in self._store.problems()]
        problems += [f"this kernel lacks {feature}" for feature in missing_features(landlock_abi())]
        problems += [f"{name}: {error}" for name, error in self._reconciler.errors().items()]
        if last_reload is not None and not last_reload.ok:
            problems.append(f"last reload rejected: {last_reload.error}")
        return DaemonStatus(
            pid=os.getpid(),
            version=supervisor.__version__,
            home=str(home.root),
            fleet_file=str(self._reconciler.fleet_path),
            started_at=started_at,
            uptime_seconds=(utcnow() - started_at).total_seconds(),
            instances=dict(counts),
            agent_api=self._provisioner.eyrie_url,
            sandbox=dict(confined),
            last_reload=last_reload,
            problems=problems,
        )

    def _orphans(self, names: set[str], unmanaged: set[str]) -> list[InstanceView]:
        """Stored instances neither managed nor declared (run in a worker thread: it reads their files)."""
        views = []
        for instance_id in sorted(unmanaged):
            with contextlib.suppress(EyrieError):
                inst = self._store.get(instance_id)
                if inst.name not in names:
                    views.append(instance_view(inst, decl=None, drift=False))
        return views

    def _view(
        self,
        name: str,
        decl: InstanceDecl | None,
        declared: FleetFile,
        config_hashes: dict[str, str],
        stored: NameIndex | None,
        now: datetime | None = None,
    ) -> tuple[InstanceView, RowJSON | None]:
        """The row and its JSON when kept; ``stored``: the store's index, read once per listing for the names
        not applied yet (a reload under way, or declared by hand since the last one). Not a coroutine: it
        never waits, and a listing calls it once per instance."""
        applied = self._reconciler.applied(name)
        if applied is None:
            assert decl is not None
            # provisioned, declared by hand since the last reload
            inst = stored.instances.get(name) if stored is not None and name not in stored.contested else None
            if inst is not None:
                return instance_view(inst, decl=decl, drift=True), None
            return missing_view(decl, self._reconciler.errors().get(name, "")), None
        inst = self._engine.written(applied.instance_id)
        drift = decl is not None and self._drifted(applied, inst, declared, config_hashes.get(inst.id, ""))
        resources = self._engine.resources(inst.id)
        view = self._views.view(
            inst,
            decl=decl,
            drift=drift,
            resources=resources,
            last_seen=self._engine.last_seen(inst.id),
            inst_json=functools.partial(self._engine.get_json, inst.id),
            now=now,
        )
        return view, self._views.encoded(inst.id)

    def _drifted(self, applied: Applied, inst: Instance, declared: FleetFile, config_hash: str) -> bool:
        """The process runs from settings other than the file's now, or its config file was edited."""
        if self._settings_drifted(applied, declared):
            return True
        return bool(inst.config_hash) and config_hash != inst.config_hash

    def _settings_drifted(self, applied: Applied, declared: FleetFile) -> bool:
        """Whether the file's settings for the instance differ from those applied; judged once per pair
        (both are frozen, and replaced whenever the file is read anew or a reload applies it)."""
        name = applied.resolved.name
        kept = self._settings_drift.get(name)
        if kept is not None and kept[0] is declared and kept[1] is applied.resolved:
            return kept[2]
        now = declared.resolve(name)
        # The applied file itself, or one equal to it (re-read by a reload that changed nothing): no digest
        # to compute. At N = 1000 the digests made the first listing after such a reload take ~0.4 s.
        drifted = not (now is applied.resolved or now == applied.resolved) and (
            now.process_fingerprint() != applied.resolved.process_fingerprint()
            or now.context_fingerprint() != applied.resolved.context_fingerprint()
        )
        self._settings_drift[name] = (declared, applied.resolved, drifted)
        return drifted

    async def _declared_now(self) -> FleetFile:
        """``fleet.yaml`` as on disk now; the applied one if it is unreadable or invalid."""
        path, applied = self._reconciler.fleet_path, self._reconciler.fleet
        if self._fleets_for is not applied:  # a start or reload applied a fleet read from the file
            self._fleets = StatCache[FleetFile | None]()
            read = self._reconciler.fleet_read
            if read is not None and read[1] is applied:
                # The file, unchanged since the start or reload read it, is the fleet applied: not parsed
                # again (at N = 1000 that was a third of the first listing after a start or reload).
                self._fleets.put(path, read[0], applied)
            self._fleets_for = applied
        unchanged, fleet = self._fleets.kept(path)  # a listing in a crash storm waits for no thread
        if not unchanged:
            fleet = await anyio.to_thread.run_sync(
                self._fleets.get, path, lambda: _load_or_none(path, applied)
            )
        return fleet or applied

    async def _config_hashes_now(self, names: list[str]) -> dict[str, str]:
        """Instance id → the hash of its config file as on disk now, for the managed ones of ``names``; one
        worker thread for all of them."""
        applied = [a for n in names if (a := self._reconciler.applied(n))]
        instances = [self._engine.written(a.instance_id) for a in applied]
        instances = [inst for inst in instances if inst.config_hash]
        if not instances:
            return {}

        found: dict[str, str] = {}
        changed = []
        self._config_hashes.refresh()
        for inst in instances:
            kept = self._config_hashes.kept(inst.config_path)
            if kept[0]:
                found[inst.id] = kept[1] or ""
            else:
                changed.append(inst)
        if not changed:
            return found

        def hashes() -> dict[str, str]:
            return {inst.id: self._config_hash(inst) for inst in changed}

        return found | await anyio.to_thread.run_sync(hashes)

    def _config_hash(self, inst: Instance) -> str:
        return self._config_hashes.get(inst.config_path, lambda: self._provisioner.config_hash(inst)) or ""

    def _stored_ids(self) -> set[str]:
        try:
            return {e.name for e in os.scandir(self._store.root) if e.is_dir() and not e.name.startswith(".")}
        except FileNotFoundError:
            return set()


def _load_or_none(path: os.PathLike[str], applied: FleetFile) -> FleetFile | None:
    """The fleet file; ``applied`` itself when it says the same (one copy of a large fleet in memory)."""
    try:
        fleet = load_fleet(path)
    except EyrieError:
        return None
    return applied if fleet == applied else fleet
