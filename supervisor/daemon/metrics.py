"""``/metrics``: the fleet's state in Prometheus text format, built fresh for each scrape."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor.models import InstanceStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from prometheus_client.metrics_core import Metric

    from supervisor.control.schema import InstanceView

__all__ = ["render_metrics"]


def _families(views: Iterable[InstanceView]) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

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
    restarts = GaugeMetricFamily(
        "eyrie_instance_restarts",
        "restart_count: restarts since the last stable run",
        labels=["instance"],
    )
    total = GaugeMetricFamily(
        "eyrie_instance_restarts_total", "every restart the supervisor made", labels=["instance"]
    )
    uptime = GaugeMetricFamily(
        "eyrie_instance_uptime_seconds", "seconds since the process became ready", labels=["instance"]
    )
    for v in views:
        for s in InstanceStatus:
            status.add_metric([v.name, s.value], 1.0 if v.status == s.value else 0.0)
        up.add_metric([v.name, v.framework], 1.0 if v.status == InstanceStatus.RUNNING.value else 0.0)
        healthy.add_metric([v.name], {"healthy": 1.0, "unhealthy": 0.0}.get(v.health_status, -1.0))
        restarts.add_metric([v.name], float(v.restart_count))
        total.add_metric([v.name], float(v.total_restarts))
        uptime.add_metric([v.name], v.uptime_seconds or 0.0)
    yield from (status, up, healthy, restarts, total, uptime)


def render_metrics(views: Callable[[], Iterable[InstanceView]]) -> bytes:
    """The exposition text; prometheus_client is imported by the first scrape, not by the daemon's start."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.registry import Collector

    class FleetCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            return _families(views())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector())
    return generate_latest(registry)
