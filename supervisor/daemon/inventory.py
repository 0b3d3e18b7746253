"""The read side of the daemon: every instance it knows, judged against ``fleet.yaml`` as it is on disk now.

A hand edit shows in ``eyriectl ps`` before any reload: a declared instance that is not provisioned is
MISSING, a provisioned one that is no longer declared is an ORPHAN, and one whose process runs from other
settings than the file's (or whose config file was edited) has DRIFT.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from supervisor.daemon._statcache import StatCache
from supervisor.daemon.views import instance_view, missing_view
from supervisor.errors import EyrieError, NotFound
from supervisor.fleet import FleetFile, load_fleet

if TYPE_CHECKING:
    from supervisor.control.schema import InstanceView
    from supervisor.daemon.reconciler import Applied, Reconciler
    from supervisor.engine import Engine
    from supervisor.fleet import InstanceDecl
    from supervisor.models import Instance
    from supervisor.provision import Provisioner
    from supervisor.store import Store

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
        self._config_hashes = StatCache[str]()

    def instances(self) -> list[InstanceView]:
        declared = self._declared_now()
        managed = self._reconciler.managed()
        views = [self._view(decl.name, decl, declared) for decl in declared.instances]
        names = {decl.name for decl in declared.instances}
        views += [self._view(name, None, declared) for name in managed if name not in names]
        for instance_id in self._stored_ids() - {a.instance_id for a in managed.values()}:
            with contextlib.suppress(EyrieError):
                inst = self._store.get(instance_id)
                if inst.name not in names:
                    views.append(instance_view(inst, decl=None, drift=False))
        return views

    def instance(self, ref: str) -> InstanceView:
        """By name or id; a managed instance is found without listing the others."""
        found = self._reconciler.find(ref)
        if found is not None:
            name = found[0]
            declared = self._declared_now()
            return self._view(name, declared.decl(name) if name in declared.names() else None, declared)
        for view in self.instances():
            if ref in (view.name, view.id):
                return view
        raise NotFound(f"instance {ref!r} not found")

    def _view(self, name: str, decl: InstanceDecl | None, declared: FleetFile) -> InstanceView:
        applied = self._reconciler.applied(name)
        if applied is None:
            assert decl is not None
            with contextlib.suppress(NotFound):  # provisioned, declared by hand since the last reload
                return instance_view(self._store.get_by_name(name), decl=decl, drift=True)
            return missing_view(decl, self._reconciler.errors().get(name, ""))
        inst = self._engine.get(applied.instance_id)
        return instance_view(
            inst, decl=decl, drift=decl is not None and self._drifted(applied, inst, declared)
        )

    def _drifted(self, applied: Applied, inst: Instance, declared: FleetFile) -> bool:
        """The process runs from settings other than the file's now, or its config file was edited."""
        now = declared.resolve(applied.resolved.name).process_fingerprint()
        if now != applied.resolved.process_fingerprint():
            return True
        return bool(inst.config_hash) and self._config_hash(inst) != inst.config_hash

    def _declared_now(self) -> FleetFile:
        """``fleet.yaml`` as on disk now; the applied one if it is unreadable or invalid."""
        path = self._reconciler.fleet_path
        return self._fleets.get(path, lambda: _load_or_none(path)) or self._reconciler.fleet

    def _config_hash(self, inst: Instance) -> str:
        return self._config_hashes.get(inst.config_path, lambda: self._provisioner.config_hash(inst)) or ""

    def _stored_ids(self) -> set[str]:
        try:
            return {e.name for e in os.scandir(self._store.root) if e.is_dir() and not e.name.startswith(".")}
        except FileNotFoundError:
            return set()


def _load_or_none(path: os.PathLike[str]) -> FleetFile | None:
    try:
        return load_fleet(path)
    except EyrieError:
        return None
