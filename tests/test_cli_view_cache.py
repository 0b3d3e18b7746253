"""The daemon keeps each instance's ``ps`` row between listings (`supervisor.daemon._view_cache`): kept while
the instance as written, its declaration, its resource sample, DRIFT and last_seen stay the same, built
again when one changes, and its uptime always current."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from supervisor.control.schema import InstanceView
from supervisor.daemon._view_cache import ViewCache
from supervisor.engine._usage import Usage
from supervisor.engine.resources import ResourceSample
from supervisor.fleet import InstanceDecl
from supervisor.models import Instance, InstanceStatus, utcnow


def _running(**fields: object) -> Instance:
    return Instance.model_validate(
        {
            "id": "i-1",
            "name": "alpha",
            "framework": "embedded",
            "status": InstanceStatus.RUNNING,
            "pid": os.getpid(),
            "started_at": utcnow() - timedelta(seconds=30),
            **fields,
        }
    )


def _sample(rss: int) -> ResourceSample:
    usage = Usage(pid=os.getpid(), ppid=1, start_ticks=1, cpu_ticks=10, rss_bytes=rss, threads=1)
    return ResourceSample(tree=[usage], before=None, elapsed=0.0)


def _row(
    cache: ViewCache, inst: Instance, decl: InstanceDecl, sample: ResourceSample, drift: bool = False
) -> InstanceView:
    return cache.view(
        inst, decl=decl, drift=drift, resources=sample, last_seen=inst.last_seen, inst_json=inst.to_json_dict
    )


class TestViewCache:
    def test_same_parts_same_row_with_current_uptime(self) -> None:
        cache, inst, decl, sample = ViewCache(), _running(), InstanceDecl(name="alpha"), _sample(1000)
        first = _row(cache, inst, decl, sample)
        uptime = first.uptime_seconds
        assert uptime is not None and uptime >= 30
        again = _row(cache, inst, decl, sample)
        assert again is first and again.uptime_seconds is not None and again.uptime_seconds >= uptime

    def test_a_changed_part_builds_the_row_again(self) -> None:
        cache, inst, decl, sample = ViewCache(), _running(), InstanceDecl(name="alpha"), _sample(1000)
        first = _row(cache, inst, decl, sample)
        written = _running(restart_count=3)
        assert _row(cache, written, decl, sample).restart_count == 3
        bigger = _sample(2000)
        assert _row(cache, written, decl, bigger).memory_bytes == 2000
        assert _row(cache, written, decl, bigger, drift=True).flags == ["DRIFT"]
        disabled = InstanceDecl(name="alpha", autostart=False)
        assert _row(cache, written, disabled, bigger).flags == ["DISABLED"]
        kept = _row(cache, written, disabled, bigger)
        probed = {**written.to_json_dict(), "last_seen": "2026-01-02T03:04:05Z"}
        seen = cache.view(
            written,
            decl=disabled,
            drift=False,
            resources=bigger,
            last_seen=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            inst_json=lambda: probed,
        )
        assert seen is not kept and seen.model_dump()["last_seen"] == "2026-01-02T03:04:05Z"
        assert first is not kept

    def test_forgets_instances_no_longer_managed(self) -> None:
        cache, inst, decl, sample = ViewCache(), _running(), InstanceDecl(name="alpha"), _sample(1000)
        first = _row(cache, inst, decl, sample)
        cache.keep_only([])
        assert _row(cache, inst, decl, sample) is not first
