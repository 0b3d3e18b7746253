"""Helpers for testing code that supervises processes: instances with small policies, a running engine that
always shuts down, an event recorder, waiting on conditions with deadlines, and the fault-injecting child
program ``tests/programs/faulty.py`` (present in a source checkout).

    async with running_engine(store) as engine:
        runtime = make_runtime(store, "crashy", faulty("--crash-after", "0.2"))
        await engine.add(runtime)
        await wait_for(lambda: engine.get(runtime.instance_id).restart_count >= 2)
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import anyio

from supervisor.engine import Engine, Event, InstanceRuntime
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import Instance, InstanceStatus, new_instance_id, utcnow
from supervisor.policies import HealthPolicy, LogPolicy, RestartPolicy
from supervisor.store import Store

__all__ = [
    "PROGRAMS_DIR",
    "EventRecorder",
    "fast_health",
    "fast_restart",
    "faulty",
    "free_port",
    "make_instance",
    "make_runtime",
    "process_gone",
    "reap",
    "running_engine",
    "wait_for",
    "wait_instance",
]

T = TypeVar("T")

PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "tests" / "programs"
"""Where the fault-injecting child programs live in a source checkout."""


def faulty(*flags: str) -> tuple[str, ...]:
    """argv running ``tests/programs/faulty.py`` with ``flags`` under this interpreter."""
    program = PROGRAMS_DIR / "faulty.py"
    if not program.exists():
        raise FileNotFoundError(f"{program} not found: the fault programs ship with the source checkout only")
    return (sys.executable, str(program), *flags)


def free_port() -> int:
    """A TCP port that nothing on 127.0.0.1 uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,  # noqa: ASYNC109
    *,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T],
    timeout: float = ...,  # noqa: ASYNC109
    *,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper: the deadline is its whole point
    *,
    interval: float = 0.01,
    what: str = "",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy, and return that;
    TimeoutError after ``timeout`` seconds."""
    last: Any = None
    with anyio.move_on_after(timeout):
        while True:
            last = predicate()
            if inspect.isawaitable(last):
                last = await last
            if last:
                return last
            await anyio.sleep(interval)
    raise TimeoutError(f"not true after {timeout:g}s: {what or predicate} (last value {last!r})")


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
    """An `Engine` running in its own task group; shut down (every process stopped) however the block ends."""
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


def reap(pid: int) -> bool:
    """Collect ``pid`` if it is an exited child of ours (left behind by a detached engine); True once gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (or is a zombie waiting for its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return True
    return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] in (b"Z", b"X")
