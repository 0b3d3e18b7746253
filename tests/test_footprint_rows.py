"""Per-instance footprint where behaviour could change: a kept ``ps`` row made again from the row before (a
new sample, a probe's last_seen, DRIFT) says, byte for byte, what a row built afresh from the instance's JSON
says, that JSON asked for only when the instance was written anew; sections share keys-sets."""

from __future__ import annotations

import pickle
from datetime import timedelta
from typing import Any

import pytest

from supervisor.control._listing import listing_body
from supervisor.control.schema import InstanceView
from supervisor.daemon._view_cache import ViewCache
from supervisor.daemon.views import instance_view
from supervisor.engine._usage import Usage
from supervisor.engine.resources import ResourceSample
from supervisor.fleet.sections import InstanceDecl
from supervisor.models import HealthStatus, Instance, InstanceStatus, rfc3339, utcnow


def _instance(**changes: Any) -> Instance:
    now = utcnow()
    fields: dict[str, Any] = {
        "id": "3f1c2a4e-0000-4000-8000-000000000001",
        "name": "rowed",
        "framework": "embedded",
        "port": 43001,
        "status": InstanceStatus.RUNNING,
        "status_detail": "process 4242 started",
        "pid": 4242,
        "pgid": 4242,
        "started_at": now - timedelta(seconds=90),
        "last_seen": now - timedelta(seconds=10),
        "health_status": HealthStatus.HEALTHY,
        "desired": "running",
        "phase": "running",
        "restart_count": 2,
        "note_from_elsewhere": "kept",
    }
    fields.update(changes)
    return Instance.model_validate(fields)


def _sample(cpu_ticks: int, rss: int) -> ResourceSample:
    tree = [Usage(4242, 1, 100, cpu_ticks, rss, 1), Usage(4243, 4242, 120, 3, 4096, 1)]
    return ResourceSample(tree=tree, before=[Usage(4242, 1, 100, cpu_ticks - 5, rss, 1)], elapsed=10.0)


class _Json:
    """`Engine.get_json` for one instance with its current last_seen, counting the calls."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.last_seen = inst.last_seen
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return self.inst.model_copy(update={"last_seen": self.last_seen}).to_json_dict()


def _fresh(inst: Instance, json: _Json, **kw: Any) -> InstanceView:
    return instance_view(
        inst, inst_json=json.inst.model_copy(update={"last_seen": json.last_seen}).to_json_dict(), **kw
    )


def _same(cache: ViewCache, view: InstanceView, fresh: InstanceView) -> None:
    view.__dict__["uptime_seconds"] = fresh.uptime_seconds = 12.5
    assert listing_body([view]) == listing_body([fresh])
    body = listing_body([view])
    assert cache.encoded(view.id).form(None)[0] + b"12.5" + cache.encoded(view.id).form(None)[1] == body[1:-1]


class TestRenewedRows:
    @pytest.mark.parametrize("drifts", [(False, True), (True, False), (True, True), (False, False)])
    def test_sample_last_seen_and_drift_renew_the_row(self, drifts: tuple[bool, bool]) -> None:
        """A new sample, a later last_seen and DRIFT set or cleared: the same bytes as a row built afresh,
        without asking for the instance's JSON again."""
        inst, decl = _instance(), InstanceDecl(name="rowed", autostart=False)
        json, cache = _Json(inst), ViewCache()
        first = cache.view(
            inst,
            decl=decl,
            drift=drifts[0],
            resources=_sample(50, 1 << 20),
            last_seen=json.last_seen,
            inst_json=json,
        )
        assert json.calls == 1
        assert "DISABLED" in first.flags
        json.last_seen = utcnow()
        sample = _sample(90, 2 << 20)
        view = cache.view(
            inst, decl=decl, drift=drifts[1], resources=sample, last_seen=json.last_seen, inst_json=json
        )
        assert json.calls == 1
        assert view is not first and view.model_extra is not None and first.model_extra is not None
        assert view.model_extra["last_seen"] == rfc3339(json.last_seen) != first.model_extra["last_seen"]
        _same(cache, view, _fresh(inst, json, decl=decl, drift=drifts[1], resources=sample))

    def test_a_new_write_builds_the_row_from_its_json(self) -> None:
        """Another instance as written (a write), another declaration: built afresh from the JSON."""
        inst, decl = _instance(), InstanceDecl(name="rowed")
        json, cache = _Json(inst), ViewCache()
        cache.view(inst, decl=decl, drift=False, resources=None, last_seen=json.last_seen, inst_json=json)
        json.inst = written = _instance(status_detail="healthy again", restart_count=0)
        view = cache.view(
            written, decl=decl, drift=False, resources=None, last_seen=json.last_seen, inst_json=json
        )
        assert json.calls == 2 and view.status_detail == "healthy again"
        other = InstanceDecl(name="rowed", project="atlas")
        view = cache.view(
            written, decl=other, drift=False, resources=None, last_seen=json.last_seen, inst_json=json
        )
        assert json.calls == 3 and view.project_id == "atlas"
        _same(cache, view, _fresh(written, json, decl=other, drift=False))

    @pytest.mark.parametrize("case", ["seen first", "seen gone", "sample first", "sample gone"])
    def test_a_key_that_comes_or_goes_builds_afresh(self, case: str) -> None:
        """A last_seen or a sample that appears or disappears changes which keys the row has: built afresh,
        the same bytes as ever."""
        seen_before = case != "seen first"
        sampled_before = case == "sample gone"
        inst = _instance(last_seen=utcnow() if seen_before else None)
        json, cache = _Json(inst), ViewCache()
        decl = InstanceDecl(name="rowed")
        before = _sample(50, 1 << 20) if sampled_before else None
        cache.view(inst, decl=decl, drift=False, resources=before, last_seen=json.last_seen, inst_json=json)
        if case == "seen first":
            json.last_seen = utcnow()
        elif case == "seen gone":
            json.last_seen = None
        after = _sample(60, 1 << 20) if case == "sample first" else None
        view = cache.view(
            inst, decl=decl, drift=False, resources=after, last_seen=json.last_seen, inst_json=json
        )
        assert json.calls == 2
        _same(cache, view, _fresh(inst, json, decl=decl, drift=False, resources=after))


class TestSharedSectionKeys:
    def test_sections_that_set_the_same_keys_share_one_set(self) -> None:
        """Declarations that set the same keys share their keys-set; dumps of what was set, copies with more
        keys and pickles say what they said, and the shared set refuses a change in place."""
        first, second = InstanceDecl(name="one"), InstanceDecl(name="two")
        assert first.model_fields_set is second.model_fields_set == {"name"}
        modelled = InstanceDecl(name="three", model="m")
        assert modelled.model_dump(mode="json", exclude_unset=True) == {"name": "three", "model": "m"}
        grown = first.model_copy(update={"model": "n"})
        assert grown.model_fields_set == {"name", "model"} and first.model_fields_set == {"name"}
        assert pickle.loads(pickle.dumps(modelled)) == modelled
        with pytest.raises(TypeError, match="shared"):
            first.model_fields_set.add("model")
        assert second.model_fields_set == {"name"}
