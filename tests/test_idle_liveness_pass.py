"""The shared liveness pass: ``process`` probes of every instance checked together, once per interval, on a
grid of that interval; a passing check moves last_seen without a write, a failing one still restarts the
instance through its policy, and a probe changed to one with I/O leaves the pass for a timer of its own."""

from __future__ import annotations

import dataclasses
import math

import pytest

from supervisor.engine import Engine, InstanceRuntime
from supervisor.engine._liveness_pass import pass_tick
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import (
    fast_health,
    fast_restart,
    faulty,
    make_runtime,
    process_gone,
    running_engine,
    wait_for,
    wait_instance,
)

pytestmark = pytest.mark.anyio

ALIVE = Probe(kind=ProbeKind.PROCESS, seconds=0)
SLEEPER = ("sleep", "600")


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


def _sleeper(store: Store, name: str) -> InstanceRuntime:
    return make_runtime(store, name, SLEEPER, ready=ALIVE, live=ALIVE, health=fast_health(interval=0.2))


def _liveness_detail(engine: Engine, instance_id: str) -> str:
    found = engine.probe_results(instance_id).get("liveness")
    return found[0].detail if found is not None else ""


class TestTogether:
    async def test_instances_of_one_interval_are_checked_in_the_same_pass(self, store: Store) -> None:
        """Once every instance has been checked, their last checks carry one time (a pass checks them all),
        last_seen moves in memory at each pass, and instance.json is not written for it."""
        runtimes = [_sleeper(store, f"s{i}") for i in range(4)]
        async with running_engine(store) as engine:
            for rt in runtimes:
                await engine.add(rt)
                await engine.start(rt.instance_id, wait=True)
            ids = [rt.instance_id for rt in runtimes]

            def one_pass() -> bool:
                checks = [engine.probe_results(i).get("liveness") for i in ids]
                return all(checks) and len({c[1] for c in checks if c is not None}) == 1

            await wait_for(one_pass, what="all four checked in one pass")
            first = engine.get(ids[0]).last_seen
            on_disk = store.get(ids[0]).last_seen
            await wait_for(lambda: engine.get(ids[0]).last_seen != first, what="last_seen to move")
            await wait_for(one_pass, what="all four checked in one pass again")
            assert store.get(ids[0]).last_seen == on_disk
            assert all("is running" in _liveness_detail(engine, i) for i in ids)


class TestFailure:
    async def test_a_failing_process_probe_restarts_through_the_policy(self, store: Store) -> None:
        """A process probe that fails (alive for less than its seconds) counts failure_threshold times and
        restarts the instance, with the reason, as a failed probe of any kind does."""
        young = Probe(kind=ProbeKind.PROCESS, seconds=600)
        rt = make_runtime(
            store,
            "young",
            SLEEPER,
            ready=ALIVE,
            live=young,
            health=fast_health(interval=0.1, failure_threshold=2),
            restart=fast_restart(max_retries=100),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            first = (await engine.start(rt.instance_id, wait=True)).pid
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.total_restarts >= 1 and i.pid not in (None, first)
            )
            assert "liveness failed 2 times" in inst.last_error
            assert first is not None and process_gone(first)


class TestProbeChanged:
    async def test_a_probe_changed_to_http_and_back_moves_between_the_pass_and_its_own_timer(
        self, store: Store
    ) -> None:
        """A changed liveness probe restarts the instance; the new process's http probe runs on a timer of
        its own, and after the change back the shared pass checks the next process again."""
        rt = make_runtime(
            store,
            "web",
            faulty("--http"),
            ready=Probe(kind=ProbeKind.HTTP, path="/ready"),
            live=ALIVE,
            health=fast_health(interval=0.1),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            pid = (await engine.start(rt.instance_id, wait=True)).pid
            await wait_for(lambda: "is running" in _liveness_detail(engine, rt.instance_id))
            http = dataclasses.replace(rt, live=Probe(kind=ProbeKind.HTTP, path="/health"))
            assert await engine.update(http) == "restarted"
            await wait_for(lambda: _liveness_detail(engine, rt.instance_id).startswith("GET /health"))
            second = engine.get(rt.instance_id).pid
            assert second != pid
            assert await engine.update(rt) == "restarted"
            await wait_for(lambda: "is running" in _liveness_detail(engine, rt.instance_id))
            inst = engine.get(rt.instance_id)
            assert inst.pid not in (pid, second) and inst.status is InstanceStatus.RUNNING


class TestGrid:
    @pytest.mark.parametrize("interval", [0.1, 0.5, 10.0, 30.0])
    def test_every_start_falls_on_one_step_within_half_an_interval(self, interval: float) -> None:
        """Whenever an instance started, its first check is a multiple of the interval, at most half an
        interval from one interval after the start; the check after a pass is the next step."""
        for start in (0.0, 0.01, 1.234, 7.77, 1000.5):
            first = pass_tick(start + interval, interval)
            assert math.isclose(first / interval, round(first / interval))
            assert abs(first - (start + interval)) <= interval / 2 + 1e-9
            following = pass_tick(first + 0.003 + interval, interval)
            assert math.isclose(following - first, interval)
