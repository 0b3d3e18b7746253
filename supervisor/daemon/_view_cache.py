"""Each managed instance's ``ps`` row, kept between listings while what it is made of stays the same.

A listing at N = 200 spent most of its time building the same rows again (the JSON of the instance as last
written, the declaration, the resource sample, validated into an `InstanceView`). A row is built again when
one of them is replaced (the engine writes a new instance, the fleet file is read anew and declares the
instance otherwise, the sampler takes a new sample), DRIFT changes or a probe moves last_seen; only the
uptime is set on each listing. A row keeps its JSON too, in each form asked for
(`supervisor.control._listing`): a listing encodes only the uptimes.

A row of the same instance as written and the same declaration is made again from the row before
(`_renewed`): a new sample, a probe's last_seen and DRIFT change only their own fields. So the instance's JSON
is needed only when the engine has written it anew, and nobody keeps it between listings (~0.9 KB each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.control._listing import RowJSON
from supervisor.daemon.views import instance_view, sample_fields, uptime_of
from supervisor.models import rfc3339

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from datetime import datetime

    from supervisor.control.schema import InstanceView
    from supervisor.engine.resources import ResourceSample
    from supervisor.fleet import InstanceDecl
    from supervisor.models import Instance

__all__ = ["ViewCache"]


class _Row:
    __slots__ = ("decl", "drift", "encoded", "inst", "last_seen", "resources", "view")

    def __init__(
        self,
        inst: Instance,
        decl: InstanceDecl | None,
        drift: bool,
        resources: ResourceSample | None,
        last_seen: datetime | None,
        view: InstanceView,
    ) -> None:
        self.inst, self.decl, self.drift, self.resources = inst, decl, drift, resources
        self.last_seen, self.view = last_seen, view
        self.encoded = RowJSON(view)

    def made_of(
        self,
        inst: Instance,
        decl: InstanceDecl | None,
        drift: bool,
        resources: ResourceSample | None,
        last_seen: datetime | None,
    ) -> bool:
        if not (
            self.inst is inst
            and self.resources is resources
            and self.drift == drift
            and self.last_seen == last_seen
        ):
            return False
        if self.decl is not decl:
            # A reload that changed nothing declares each instance anew, equal to the old: the row holds
            # (at N = 1000 rebuilding every row made the first listing after it take ~0.3 s more).
            if self.decl != decl:
                return False
            self.decl = decl  # the old fleet's declaration is not kept alive by the row
        return True


class ViewCache:
    """Instance id → its last row; the instance as last written, its declaration and its sample are frozen
    (replaced, never changed), so their identity says the row still holds (or, for a declaration read anew,
    its equality)."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}

    def view(
        self,
        inst: Instance,
        *,
        decl: InstanceDecl | None,
        drift: bool,
        resources: ResourceSample | None,
        last_seen: datetime | None,
        inst_json: Callable[[], dict[str, Any]],
        now: datetime | None = None,
    ) -> InstanceView:
        """The row of ``inst``; ``last_seen``: its current one (`Engine.last_seen`); ``inst_json``: its JSON
        with it (`Engine.get_json`, a fresh dict), asked for only when the engine has written it anew;
        ``now``: the listing's time, for the uptime of a kept row (default: now)."""
        row = self._rows.get(inst.id)
        if row is not None and row.made_of(inst, decl, drift, resources, last_seen):
            row.view.__dict__["uptime_seconds"] = uptime_of(inst, now)  # unvalidated, minus the setter
            return row.view
        view = _renewed(row, inst, decl, drift, resources, last_seen, now) if row is not None else None
        if view is None:
            view = instance_view(inst, decl=decl, drift=drift, resources=resources, inst_json=inst_json())
        self._rows[inst.id] = _Row(inst, decl, drift, resources, last_seen, view)
        return view

    def encoded(self, instance_id: str) -> RowJSON:
        """The JSON of the row `view` last returned for the instance, but its uptime."""
        return self._rows[instance_id].encoded

    def keep_only(self, instance_ids: Collection[str]) -> None:
        """Forget the rows of instances no longer managed."""
        for gone in self._rows.keys() - set(instance_ids):
            del self._rows[gone]


def _renewed(
    row: _Row,
    inst: Instance,
    decl: InstanceDecl | None,
    drift: bool,
    resources: ResourceSample | None,
    last_seen: datetime | None,
    now: datetime | None,
) -> InstanceView | None:
    """The row `instance_view` would build, made from ``row`` when only what changes without a write of the
    instance has changed: its sample, its last_seen (kept among the view's extra keys, as the JSON has it) and
    DRIFT. None when it must be built afresh: another instance or declaration, a sample gone, a last_seen
    that comes or goes (its key's place in the JSON)."""
    if row.inst is not inst or (row.resources is None) != (resources is None):
        return None
    if row.decl is not decl and row.decl != decl:
        return None
    extra = row.view.__pydantic_extra__
    if extra is None or ("last_seen" in extra) != (last_seen is not None):
        return None
    view = row.view.model_copy()
    fields = view.__dict__
    fields["uptime_seconds"] = uptime_of(inst, now)
    fields["flags"] = ["DRIFT", *row.view.flags] if drift and not row.drift else list(row.view.flags)
    if row.drift and not drift:
        fields["flags"].remove("DRIFT")
    if last_seen is not None:
        view.__pydantic_extra__ = {**extra, "last_seen": rfc3339(last_seen)}
    if resources is not None and inst.pid is not None:
        fields.update(sample_fields(resources))
    return view
