"""Instances, runtimes and a running engine on a test's time scale, and a recorder of the engine's events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anyio

from supervisor.engine import Engine, Event, InstanceRuntime
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import Instance, InstanceStatus, new_instance_id, utcnow
from supervisor.policies import HealthPolicy, LogPolicy, RestartPolicy
from supervisor.port_claims import ClaimRegistry
from supervisor.store import Store
from supervisor.testing._processes import free_port
from supervisor.testing._waiting import wait_for

__all__ = [
    "EventRecorder",
    "fast_health",
    "fast_restart",
    "make_instance",
    "make_runtime",
    "running_engine",
    "wait_instance",
]


def fast_restart(**overrides: Any) -> RestartPolicy:
    """A restart policy on a test's time scale: 50 ms first delay, doubling, no jitter, no cooldown."""
    values: dict[str, Any] = {
        "policy": "on-failure",
        "initial_delay": 0.05,
        "factor": 2.0,
        "max_delay": 1.0,
        "jitter": 0.0,
        "reset_after": 60.0,
        "max_retries": 5,
        "cooldown": 0.0,
    }
    values.update(overrides)
    return RestartPolicy.model_validate(values)


def fast_health(**overrides: Any) -> HealthPolicy:
    """Probes every 100 ms, 1 s timeout, 2 failures to restart, 5 s to become ready."""
    values: dict[str, Any] = {"interval": 0.1, "timeout": 1.0, "failure_threshold": 2, "start_timeout": 5.0}
    values.update(overrides)
    return HealthPolicy.model_validate(values)


def make_instance(store: Store, name: str, *, port: int = 0, framework: str = "embedded") -> Instance:
    """Create an instance record with its ``workspace/`` and ``logs/`` directories, status ``created``."""
    inst = Instance(
        id=new_instance_id(),
        name=name,
        display_name=name,
        framework=framework,
        port=port,
        created_at=utcnow(),
        status=InstanceStatus.CREATED,
    )
    directory = store.dir(inst.id)
    inst.workspace_path = str(directory / "workspace")
    store.create(inst)
    (directory / "workspace").mkdir(exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    return inst


def make_runtime(
    store: Store,
    name: str | Instance,
    argv: Sequence[str],
    *,
    port: int | None = None,
    ready: Probe | None = None,
    live: Probe | None = None,
    restart: RestartPolicy | None = None,
    health: HealthPolicy | None = None,
    logs: LogPolicy | None = None,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = 2.0,
    autostart: bool = True,
    config_hash: str = "",
) -> InstanceRuntime:
    """An `InstanceRuntime` for a test program; creates the instance first when given a name.

    Defaults: a free port, a ``process`` readiness probe of 0 s, no liveness probe, `fast_restart`,
    `fast_health`, a 2 s stop timeout.
    """
    inst = name if isinstance(name, Instance) else make_instance(store, name, port=port or free_port())
    directory = store.dir(inst.id)
    return InstanceRuntime(
        instance_id=inst.id,
        name=inst.name,
        framework=inst.framework,
        port=inst.port if port is None else port,
        argv=tuple(argv),
        env=dict(env or {}),
        cwd=directory / "workspace",
        log_path=directory / "logs" / f"{inst.framework}.log",
        ready=ready or Probe(kind=ProbeKind.PROCESS, seconds=0),
        live=live,
        stop_timeout=stop_timeout,
        restart=restart or fast_restart(),
        health=health or fast_health(),
        logs=logs or LogPolicy(),
        autostart=autostart,
        config_hash=config_hash,
    )


async def wait_instance(
    engine: Engine,
    instance_id: str,
    predicate: Callable[[Instance], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper: the deadline is its whole point
) -> Instance:
    """Wait until the engine's view of an instance satisfies ``predicate``; return that view."""

    def check() -> Instance | None:
        inst = engine.get(instance_id)
        return inst if predicate(inst) else None

    found = await wait_for(check, timeout, what=f"instance {instance_id}: {predicate}")
    assert found is not None
    return found


@contextlib.asynccontextmanager
async def running_engine(store: Store, **options: Any) -> AsyncIterator[Engine]:
    """An `Engine` running in its own task group; shut down (every process stopped) however the block ends.

    Its port claims live beside the store unless ``claims`` is given, so a test's ports (often ephemeral
    ones) leave nothing in the machine-wide directory; ports are still checked machine-wide by binding."""
    options.setdefault("claims", ClaimRegistry(store.root.parent / "port-claims"))
    engine = Engine(store, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        try:
            yield engine
        finally:
            with anyio.CancelScope(shield=True):
                await engine.shutdown()
                await engine.detach()


class EventRecorder:
    """An ``on_event`` callback that keeps every event, with helpers to read them back."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def transitions(self, instance_id: str) -> list[tuple[str, str, str]]:
        """``(from_status, to_status, detail)`` of every transition of one instance, in order."""
        return [
            (e.from_status, e.to_status, e.detail)
            for e in self.events
            if e.event == "transition" and e.instance_id == instance_id
        ]

    def of(self, instance_id: str, kind: str = "transition") -> list[Event]:
        return [e for e in self.events if e.event == kind and e.instance_id == instance_id]
