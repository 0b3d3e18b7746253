"""An actor that raises is restarted by the engine through its instance's restart policy, like a crashed
child; no other instance notices. Each test injects one exception into one step of one actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog

from supervisor.engine import Engine, InstanceRuntime, _record, _watch, actor
from supervisor.engine.states import Phase
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import Instance, InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import fast_restart, faulty, make_runtime, running_engine, wait_instance

pytestmark = pytest.mark.anyio

HTTP_READY = Probe(kind=ProbeKind.HTTP, path="/ready")
HTTP_LIVE = Probe(kind=ProbeKind.HTTP, path="/health")

IdOf = Callable[..., str]

# step → (where the step's function lives, its name, how to tell whose call it is)
STEPS: dict[str, tuple[object, str, IdOf]] = {
    "spawn": (actor, "spawn_child", lambda rt, *_a, **_k: rt.instance_id),
    "readiness": (_watch.Watch, "readiness", lambda watch: watch._actor.runtime.instance_id),
    "liveness": (_watch.Watch, "liveness", lambda watch: watch._actor.runtime.instance_id),
    "stop": (actor, "stop_run", lambda rt, *_a, **_k: rt.instance_id),
    "persist": (_record.InstanceRecord, "persist", lambda record: record._instance_id),
    "sweep": (actor, "sweep", lambda rt, *_a, **_k: rt.instance_id),
}


class Injected:
    """Makes one step raise for one instance: ``times`` times, then behave again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, step: str, victim: str, times: int = 1) -> None:
        owner, name, id_of = STEPS[step]
        original: Callable[..., Awaitable[Any]] = getattr(owner, name)
        self.fired = 0
        self.times = times

        async def raising(*args: Any, **kwargs: Any) -> Any:
            if self.fired < self.times and id_of(*args, **kwargs) == victim:
                self.fired += 1
                raise RuntimeError(f"injected fault in {step}")
            return await original(*args, **kwargs)

        monkeypatch.setattr(owner, name, raising)


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


def _agent(store: Store, name: str, **options: Any) -> InstanceRuntime:
    return make_runtime(store, name, faulty("--http"), ready=HTTP_READY, live=HTTP_LIVE, **options)


async def _running(engine: Engine, rt: InstanceRuntime, *, other_than: int | None = None) -> Instance:
    def up(i: Instance) -> bool:
        return i.status is InstanceStatus.RUNNING and i.pid is not None and i.pid != other_than

    return await wait_instance(engine, rt.instance_id, up, timeout=15)


class TestActorRestart:
    @pytest.mark.parametrize("step", sorted(STEPS))
    async def test_an_exception_in_one_step_restarts_that_actor_only(
        self, store: Store, monkeypatch: pytest.MonkeyPatch, step: str
    ) -> None:
        """The step raises once: the instance is running again (last_error says why, restart counted),
        the log says the engine restarted it, and the other instance keeps its process and its count."""
        victim, bystander = _agent(store, "victim"), _agent(store, "bystander")
        with structlog.testing.capture_logs() as logs:
            async with running_engine(store) as engine:
                await engine.add(bystander)
                kept = await _running(engine, bystander)
                injected = Injected(monkeypatch, step, victim.instance_id)
                await engine.add(victim)
                first = await _running(engine, victim) if step == "stop" else None
                if first is not None:
                    await engine.restart(victim.instance_id)
                inst = await wait_instance(
                    engine,
                    victim.instance_id,
                    lambda i: (
                        injected.fired == 1 and i.status is InstanceStatus.RUNNING and i.restart_count == 1
                    ),
                    timeout=15,
                )
                assert inst.last_error == f"internal error: RuntimeError: injected fault in {step}"
                assert first is None or inst.pid != first.pid
                now = engine.get(bystander.instance_id)
                assert (now.status, now.pid, now.restart_count) == (InstanceStatus.RUNNING, kept.pid, 0)
        restarted = [e for e in logs if e["event"] == "actor_restarted"]
        assert [e["instance"] for e in restarted] == ["victim"]
        assert restarted[0]["error"] == inst.last_error

    async def test_an_actor_that_keeps_raising_gives_up_like_a_crash_loop(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past max_retries the instance waits in error (held) with the reason; an operator's start, once
        the fault is gone, runs it again; the other instance is never touched."""
        victim = _agent(store, "victim", restart=fast_restart(max_retries=2))
        bystander = _agent(store, "bystander")
        injected = Injected(monkeypatch, "spawn", victim.instance_id, times=3)
        with structlog.testing.capture_logs() as logs:
            async with running_engine(store) as engine:
                await engine.add(bystander)
                kept = await _running(engine, bystander)
                await engine.add(victim)
                held = await wait_instance(
                    engine, victim.instance_id, lambda i: i.phase == Phase.HELD.value, timeout=15
                )
                assert held.status is InstanceStatus.ERROR
                assert held.status_detail == "crash loop: 2 restarts"
                assert "injected fault in spawn" in held.last_error
                assert injected.fired == 3
                inst = await engine.start(victim.instance_id, wait=True)
                assert inst.status is InstanceStatus.RUNNING
                now = engine.get(bystander.instance_id)
                assert (now.pid, now.restart_count) == (kept.pid, 0)
        assert [e["event"] for e in logs if e.get("instance") == "victim"].count("actor_restarted") == 2
        assert any(e["event"] == "actor_held" for e in logs)
