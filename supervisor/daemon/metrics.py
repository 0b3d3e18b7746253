"""``/metrics``: the fleet's state in Prometheus text format, built fresh for each scrape.

Names follow Prometheus' conventions: counters are counters and end in ``_total``, sizes are in bytes, times
in seconds, timestamps in seconds since the epoch.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import supervisor
from supervisor.models import InstanceStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from prometheus_client.metrics_core import Metric

    from supervisor.control.schema import InstanceView, ReloadResult

__all__ = ["ReloadCounts", "render_metrics"]


@dataclass(slots=True, eq=False)
class ReloadCounts:
    """Reloads since the daemon started, by outcome, and when the last one finished."""

    succeeded: int = 0
    failed: int = 0
    last_at: float | None = None  # seconds since the epoch
    last_ok: bool | None = None

    def count(self, result: ReloadResult) -> ReloadResult:
        """Count ``result`` (a reload that was applied or rejected) and hand it back."""
        if result.ok:
            self.succeeded += 1
        else:
            self.failed += 1
        self.last_at = result.at.timestamp() if result.at is not None else None
        self.last_ok = result.ok
        return result


def _daemon_families(reloads: ReloadCounts) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    build = GaugeMetricFamily(
        "eyrie_build_info", "1, labelled with eyried's version", labels=["version", "python"]
    )
    build.add_metric([supervisor.__version__, platform.python_version()], 1.0)
    counted = CounterMetricFamily("eyrie_reloads", "fleet file reloads by outcome", labels=["result"])
    counted.add_metric(["success"], float(reloads.succeeded))
    counted.add_metric(["failure"], float(reloads.failed))
    yield from (build, counted)
    if reloads.last_at is not None:
        yield GaugeMetricFamily(
            "eyrie_last_reload_timestamp_seconds", "when the last reload finished", value=reloads.last_at
        )
        yield GaugeMetricFamily(
            "eyrie_last_reload_success",
            "1 when the last reload was applied, 0 when it was rejected",
            value=1.0 if reloads.last_ok else 0.0,
        )


def _instance_families(views: Iterable[InstanceView]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    status = GaugeMetricFamily(
        "eyrie_instance_status",
        "1 for the instance's current lifecycle status",
        labels=["instance", "status"],
    )
    up = GaugeMetricFamily(
        "eyrie_instance_up", "1 when the instance is running", labels=["instance", "framework"]
    )
    healthy = GaugeMetricFamily(
        "eyrie_instance_healthy", "1 healthy, 0 unhealthy, -1 unknown", labels=["instance"]
    )
    restart_count = GaugeMetricFamily(
        "eyrie_instance_restart_count",
        "restart_count: restarts since the last stable run",
        labels=["instance"],
    )
    restarts = CounterMetricFamily(
        "eyrie_instance_restarts", "every restart the supervisor made", labels=["instance"]
    )
    uptime = GaugeMetricFamily(
        "eyrie_instance_uptime_seconds", "seconds since the process became ready", labels=["instance"]
    )
    started = GaugeMetricFamily(
        "eyrie_instance_start_time_seconds",
        "when the running process became ready, in seconds since the epoch",
        labels=["instance"],
    )
    cpu = CounterMetricFamily(
        "eyrie_instance_cpu_seconds", "user and system CPU time of the live process tree", labels=["instance"]
    )
    memory = GaugeMetricFamily(
        "eyrie_instance_memory_bytes", "resident memory summed over the process tree", labels=["instance"]
    )
    processes = GaugeMetricFamily(
        "eyrie_instance_processes", "processes in the instance's tree", labels=["instance"]
    )
    for v in views:
        for s in InstanceStatus:
            status.add_metric([v.name, s.value], 1.0 if v.status == s.value else 0.0)
        up.add_metric([v.name, v.framework], 1.0 if v.status == InstanceStatus.RUNNING.value else 0.0)
        healthy.add_metric([v.name], {"healthy": 1.0, "unhealthy": 0.0}.get(v.health_status, -1.0))
        restart_count.add_metric([v.name], float(v.restart_count))
        restarts.add_metric([v.name], float(v.total_restarts))
        uptime.add_metric([v.name], v.uptime_seconds or 0.0)
        if (since := _started_at(v)) is not None:
            started.add_metric([v.name], since)
        if v.cpu_seconds is not None:
            cpu.add_metric([v.name], v.cpu_seconds)
        if v.memory_bytes is not None:
            memory.add_metric([v.name], float(v.memory_bytes))
        if v.processes is not None:
            processes.add_metric([v.name], float(v.processes))
    yield from (status, up, healthy, restart_count, restarts, uptime, started, cpu, memory, processes)


def _started_at(view: InstanceView) -> float | None:
    """The view's ``started_at`` (kept from ``instance.json``) while it runs, in seconds since the epoch."""
    if view.status != InstanceStatus.RUNNING.value or view.uptime_seconds is None:
        return None
    from datetime import datetime

    raw = (view.model_extra or {}).get("started_at")
    try:
        return datetime.fromisoformat(raw).timestamp() if isinstance(raw, str) else None
    except ValueError:
        return None


def render_metrics(views: Iterable[InstanceView], reloads: ReloadCounts) -> bytes:
    """The exposition text; prometheus_client is imported by the first scrape, not by the daemon's start."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    class FleetCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from _daemon_families(reloads)
            yield from _instance_families(views)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector())
    return generate_latest(registry)
