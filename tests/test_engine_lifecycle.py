"""The engine end to end with real children: start, readiness, restarts, crash loops, stop, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import anyio
import pytest
import structlog

from supervisor.engine import Engine, Event
from supervisor.errors import NameExists, NotFound
from supervisor.frameworks.spec import Probe, ProbeKind
from supervisor.models import HealthStatus, Instance, InstanceStatus
from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry
from supervisor.ports import port_in_use
from supervisor.store import Store
from supervisor.testing import (
    EventRecorder,
    fast_health,
    fast_restart,
    faulty,
    free_port,
    make_runtime,
    process_gone,
    running_engine,
    wait_for,
    wait_instance,
)

pytestmark = pytest.mark.anyio

HTTP_READY = Probe(kind=ProbeKind.HTTP, path="/ready")
HTTP_LIVE = Probe(kind=ProbeKind.HTTP, path="/health")


@pytest.fixture
def store(home: Home) -> Store:
    return Store(home)


def status_of(engine: Engine, instance_id: str) -> InstanceStatus:
    return engine.get(instance_id).status


class TestStartAndReady:
    async def test_http_instance_becomes_running_with_pid_recorded(self, store: Store) -> None:
        """A child serving /ready goes created → starting → running, and instance.json records its process."""
        events = EventRecorder()
        async with running_engine(store, on_event=events) as engine:
            rt = make_runtime(store, "web", faulty("--http"), ready=HTTP_READY, live=HTTP_LIVE)
            await engine.add(rt)
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.RUNNING
            assert inst.pid and inst.pgid == inst.pid and inst.proc_start_time
            assert inst.boot_id == engine.boot_id and inst.cmdline and inst.cmdline[-1] == "--http"
            assert inst.health_status is HealthStatus.HEALTHY
            on_disk = store.get(rt.instance_id)
            assert (on_disk.status, on_disk.pid, on_disk.desired) == (
                InstanceStatus.RUNNING,
                inst.pid,
                "running",
            )
            steps = [(a, b) for a, b, _ in events.transitions(rt.instance_id)]
            assert steps == [("created", "starting"), ("starting", "running")]

    async def test_child_gets_workspace_log_file_and_identity_environment(self, store: Store) -> None:
        """The child runs in the workspace with EYRIE_* variables set, writing into the instance log file."""
        script = "import os; print(os.getcwd(), os.environ['EYRIE_INSTANCE_ID'], os.environ['EYRIE_PORT'])"
        rt = make_runtime(
            store,
            "env",
            ("python3", "-c", script + "; import time; time.sleep(60)"),
            ready=Probe(kind=ProbeKind.LOG, pattern="{id}"),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.RUNNING
            agent = [line for line in rt.log_path.read_text().splitlines() if " eyried: " not in line]
            assert agent == [f"{rt.cwd} {rt.instance_id} {rt.port}"]

    async def test_start_timeout_is_a_failed_start(self, store: Store) -> None:
        """A child that never becomes ready is stopped after start_timeout and the failure is recorded."""
        rt = make_runtime(
            store,
            "never",
            faulty("--http", "--never-ready"),
            ready=HTTP_READY,
            health=fast_health(start_timeout=0.5),
            restart=fast_restart(policy="never"),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: status_of(engine, rt.instance_id) is InstanceStatus.ERROR)
            inst = engine.get(rt.instance_id)
            assert inst.last_error.startswith("not ready after 0.5s")
            assert inst.pid is None and inst.last_exit is not None

    async def test_missing_binary_is_a_clear_failed_start_and_engine_lives_on(self, store: Store) -> None:
        """A program not on PATH fails with "<name>: command not found on PATH"; other instances still run."""
        missing = make_runtime(
            store, "missing", ("no-such-agent-binary", "serve"), restart=fast_restart(policy="never")
        )
        fine = make_runtime(store, "fine", faulty())
        async with running_engine(store) as engine:
            await engine.add(missing)
            await wait_for(lambda: status_of(engine, missing.instance_id) is InstanceStatus.ERROR)
            assert (
                engine.get(missing.instance_id).last_error
                == "no-such-agent-binary: command not found on PATH"
            )
            assert (
                store.get(missing.instance_id).last_error == "no-such-agent-binary: command not found on PATH"
            )
            await engine.add(fine)
            assert (await engine.start(fine.instance_id, wait=True)).status is InstanceStatus.RUNNING

    async def test_exec_failure_names_the_errno(self, store: Store, tmp_path: Path) -> None:
        """A program that cannot be executed fails with the system's reason (permission denied)."""
        program = tmp_path / "not-executable"
        program.write_text("#!/bin/sh\nexit 0\n")
        program.chmod(0o644)
        rt = make_runtime(store, "noexec", (str(program),), restart=fast_restart(policy="never"))
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: status_of(engine, rt.instance_id) is InstanceStatus.ERROR)
            assert engine.get(rt.instance_id).last_error == f"{program}: cannot execute: Permission denied"

    async def test_port_held_by_a_stranger_names_the_holder(self, store: Store) -> None:
        """A port another process listens on fails the start with "port N is held by pid P (name)"."""
        port = free_port()
        stranger = _start_stranger(port)
        try:
            await wait_for(lambda: port_in_use(port))
            rt = make_runtime(
                store, "blocked", faulty("--tcp"), port=port, restart=fast_restart(policy="never")
            )
            async with running_engine(store) as engine:
                await engine.add(rt)
                await wait_for(lambda: status_of(engine, rt.instance_id) is InstanceStatus.ERROR)
                error = engine.get(rt.instance_id).last_error
                assert error.startswith(f"port {port} is held by pid {stranger.pid} (python")
        finally:
            stranger.kill()
            stranger.wait()


def _delays(events: list[Event], instance_id: str) -> list[float]:
    """Seconds from each backoff transition to the start that followed it."""
    out: list[float] = []
    backoff_at: datetime | None = None
    for e in events:
        if e.instance_id != instance_id or e.event != "transition":
            continue
        if e.to_status == "stopped" and e.detail.startswith("backoff"):
            backoff_at = e.time
        elif e.to_status == "starting" and backoff_at is not None:
            out.append((e.time - backoff_at).total_seconds())
            backoff_at = None
    return out


class TestRestartPolicy:
    async def test_crash_is_restarted_with_growing_delays(self, store: Store) -> None:
        """Each restart of a crashing child waits initial_delay × factor^(n−1): the delays grow."""
        events = EventRecorder()
        rt = make_runtime(
            store,
            "crashy",
            faulty("--crash-on-start", "1"),
            restart=fast_restart(initial_delay=0.1, factor=2, max_retries=4, max_delay=5),
        )
        async with running_engine(store, on_event=events) as engine:
            await engine.add(rt)
            await wait_for(lambda: status_of(engine, rt.instance_id) is InstanceStatus.ERROR, timeout=10)
            delays = _delays(events.events, rt.instance_id)
            assert len(delays) == 4
            for observed, nominal in zip(delays, [0.1, 0.2, 0.4, 0.8], strict=True):
                assert observed >= nominal - 0.005
            assert delays == sorted(delays) and delays[-1] > 2 * delays[0]
            inst = engine.get(rt.instance_id)
            assert (inst.restart_count, inst.total_restarts) == (4, 4)
            assert inst.last_error == "crash loop: 4 restarts (last: exit code 1)"
            assert inst.last_exit is not None and inst.last_exit.code == 1

    async def test_backoff_is_visible_while_waiting(self, store: Store) -> None:
        """During a backoff the instance is stopped with detail "backoff Ns" and next_start_at set."""
        rt = make_runtime(
            store,
            "slowback",
            faulty("--crash-on-start", "2"),
            restart=fast_restart(initial_delay=2, max_delay=5),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status_detail.startswith("backoff")
            )
            assert inst.status is InstanceStatus.STOPPED and inst.status_detail == "backoff 2.0s"
            assert inst.next_start_at is not None and inst.restart_count == 1
            on_disk = store.get(rt.instance_id)
            assert on_disk.status_detail == "backoff 2.0s" and on_disk.next_start_at == inst.next_start_at

    async def test_crash_loop_goes_to_error_and_recovers_after_cooldown(
        self, store: Store, tmp_path: Path
    ) -> None:
        """Past max_retries the instance is in error ("crash loop"); after cooldown it is retried and runs."""
        marker = tmp_path / "broken"
        marker.write_text("")
        rt = make_runtime(
            store,
            "loopy",
            faulty("--crash-if-exists", str(marker)),
            ready=Probe(kind=ProbeKind.PROCESS, seconds=0.2),
            restart=fast_restart(max_retries=2, cooldown=0.6),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.ERROR)
            assert inst.status_detail == "crash loop: 2 restarts; retry in 0.6s"
            assert inst.next_start_at is not None
            marker.unlink()
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING)
            assert inst.restart_count == 0 and inst.total_restarts == 3

    async def test_crash_loop_without_cooldown_waits_for_an_operator(
        self, store: Store, tmp_path: Path
    ) -> None:
        """With cooldown 0 the error holds until an explicit start, which runs it again from restart 0."""
        marker = tmp_path / "broken"
        marker.write_text("")
        rt = make_runtime(
            store,
            "held",
            faulty("--crash-if-exists", str(marker)),
            ready=Probe(kind=ProbeKind.PROCESS, seconds=0.2),
            restart=fast_restart(max_retries=1, cooldown=0),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: status_of(engine, rt.instance_id) is InstanceStatus.ERROR)
            assert engine.get(rt.instance_id).next_start_at is None
            marker.unlink()
            inst = await engine.start(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.RUNNING and inst.restart_count == 0

    async def test_exit_zero_under_on_failure_stays_stopped(self, store: Store) -> None:
        """A clean exit under on-failure is not restarted: stopped, desired stopped, no restart counted."""
        rt = make_runtime(store, "oneshot", faulty("--exit-after", "0.1"))
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.status is InstanceStatus.STOPPED)
            assert inst.status_detail == "completed: exit code 0"
            assert (inst.desired, inst.restart_count, inst.total_restarts) == ("stopped", 0, 0)
            with anyio.move_on_after(0.5):
                await wait_for(lambda: status_of(engine, rt.instance_id) is not InstanceStatus.STOPPED, 1)
            assert status_of(engine, rt.instance_id) is InstanceStatus.STOPPED

    async def test_always_restarts_exit_zero(self, store: Store) -> None:
        """Under `always` a clean exit is restarted like a crash."""
        rt = make_runtime(
            store, "again", faulty("--exit-after", "0.05"), restart=fast_restart(policy="always")
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: engine.get(rt.instance_id).total_restarts >= 2)
            assert engine.get(rt.instance_id).last_exit is not None

    async def test_never_policy_leaves_a_crash_in_error(self, store: Store) -> None:
        """Under `never` a crash is not restarted: error with the exit as last_error."""
        rt = make_runtime(
            store,
            "once",
            faulty("--crash-after", "0.05", "--exit-code", "7"),
            restart=fast_restart(policy="never"),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: status_of(engine, rt.instance_id) is InstanceStatus.ERROR)
            inst = engine.get(rt.instance_id)
            assert inst.last_error == "exit code 7" and inst.total_restarts == 0

    async def test_liveness_failure_restarts_through_the_policy(self, store: Store) -> None:
        """failure_threshold failed liveness probes stop the child and start a new one (restart counted)."""
        events = EventRecorder()
        rt = make_runtime(
            store,
            "sickly",
            faulty("--http", "--unhealthy-after", "0.4"),
            ready=HTTP_READY,
            live=HTTP_LIVE,
            health=fast_health(interval=0.1, failure_threshold=2),
        )
        async with running_engine(store, on_event=events) as engine:
            await engine.add(rt)
            first = (await engine.start(rt.instance_id, wait=True)).pid
            inst = await wait_instance(
                engine, rt.instance_id, lambda i: i.status is InstanceStatus.RUNNING and i.pid != first
            )
            assert inst.total_restarts == 1 and first is not None and process_gone(first)
            assert "liveness failed 2 times" in inst.last_error
            health = [e.data["health_status"] for e in events.of(rt.instance_id, "health")]
            assert health[0] == "unhealthy" and inst.health_status is HealthStatus.HEALTHY

    async def test_restart_count_resets_after_stable_running(self, store: Store) -> None:
        """restart_count returns to 0 after reset_after of healthy running; total_restarts keeps counting."""
        rt = make_runtime(
            store,
            "settles",
            faulty("--crash-if-exists", "/nonexistent"),
            restart=fast_restart(reset_after=0.3),
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            first = (await engine.start(rt.instance_id, wait=True)).pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            await wait_for(lambda: engine.get(rt.instance_id).restart_count == 1)
            inst = await wait_instance(engine, rt.instance_id, lambda i: i.restart_count == 0)
            assert inst.total_restarts == 1 and inst.status is InstanceStatus.RUNNING
            assert inst.last_exit is not None and inst.last_exit.signal == 9


class TestStop:
    async def test_stop_kills_sigterm_ignorer_and_escaped_grandchild_and_frees_port(
        self, store: Store, tmp_path: Path
    ) -> None:
        """A SIGTERM-ignoring child and its grandchild in another session are gone after stop; port free."""
        grandchild_file = tmp_path / "grandchild.pid"
        rt = make_runtime(
            store,
            "stubborn",
            faulty("--http", "--ignore-sigterm", "--grandchild", str(grandchild_file)),
            ready=HTTP_READY,
            stop_timeout=0.5,
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            inst = await engine.start(rt.instance_id, wait=True)
            grandchild = int(await wait_for(lambda: grandchild_file.exists() and grandchild_file.read_text()))
            assert os.getsid(grandchild) != os.getsid(inst.pid or 0)
            began = time.monotonic()
            stopped = await engine.stop(rt.instance_id, wait=True)
            assert time.monotonic() - began >= 0.5
            assert stopped.status is InstanceStatus.STOPPED and stopped.desired == "stopped"
            assert process_gone(inst.pid or 0) and process_gone(grandchild)
            assert not port_in_use(rt.port)
            assert stopped.last_exit is not None and stopped.last_exit.signal == 9

    async def test_stop_then_start_again(self, store: Store) -> None:
        """A stopped instance starts again on request with a new process."""
        rt = make_runtime(store, "toggle", faulty("--tcp"), ready=Probe(kind=ProbeKind.TCP))
        async with running_engine(store) as engine:
            await engine.add(rt)
            first = (await engine.start(rt.instance_id, wait=True)).pid
            assert (await engine.stop(rt.instance_id, wait=True)).status is InstanceStatus.STOPPED
            again = await engine.start(rt.instance_id, wait=True)
            assert again.status is InstanceStatus.RUNNING and again.pid not in (None, first)

    async def test_restart_gives_a_new_process_and_zero_restart_count(self, store: Store) -> None:
        """restart(wait) stops the running child and returns once a new one is running."""
        rt = make_runtime(store, "bounce", faulty("--http"), ready=HTTP_READY)
        async with running_engine(store) as engine:
            await engine.add(rt)
            first = await engine.start(rt.instance_id, wait=True)
            again = await engine.restart(rt.instance_id, wait=True)
            assert again.status is InstanceStatus.RUNNING and again.pid != first.pid
            assert again.restart_count == 0 and first.pid is not None and process_gone(first.pid)

    async def test_stop_interrupts_a_backoff(self, store: Store) -> None:
        """Stopping an instance waiting out a backoff cancels the pending restart."""
        rt = make_runtime(
            store, "pending", faulty("--crash-on-start", "1"), restart=fast_restart(initial_delay=30)
        )
        async with running_engine(store) as engine:
            await engine.add(rt)
            await wait_for(lambda: engine.get(rt.instance_id).status_detail.startswith("backoff"))
            inst = await engine.stop(rt.instance_id, wait=True)
            assert inst.status is InstanceStatus.STOPPED and inst.status_detail == "stopped by request"
            assert inst.next_start_at is None


class TestShutdown:
    async def test_shutdown_stops_every_process_in_parallel_keeping_desired(self, store: Store) -> None:
        """shutdown() stops all children at once (not one stop_timeout after another) and keeps desired."""
        runtimes = [
            make_runtime(store, f"stubborn-{n}", faulty("--ignore-sigterm"), stop_timeout=1.0)
            for n in range(4)
        ]
        engine = Engine(store, claims=ClaimRegistry(store.root.parent / "port-claims"))
        async with anyio.create_task_group() as tg:
            await tg.start(engine.run)
            for rt in runtimes:
                await engine.add(rt)
            pids = [(await engine.start(rt.instance_id, wait=True)).pid for rt in runtimes]
            began = time.monotonic()
            await engine.shutdown()
            elapsed = time.monotonic() - began
        assert elapsed < 3.0  # four stop timeouts of 1 s one after another would take 4 s
        for rt, pid in zip(runtimes, pids, strict=True):
            inst = store.get(rt.instance_id)
            assert (inst.status, inst.desired, inst.status_detail) == (
                InstanceStatus.STOPPED,
                "running",
                "supervisor shut down",
            )
            assert pid is not None and process_gone(pid)


class TestRobustness:
    async def test_a_failing_event_subscriber_does_not_stop_supervision(self, store: Store) -> None:
        """An on_event callback that raises is logged; the instance still reaches running."""

        def broken(event: Event) -> None:
            raise RuntimeError("subscriber bug")

        rt = make_runtime(store, "robust", faulty())
        with structlog.testing.capture_logs() as logs:
            async with running_engine(store, on_event=broken) as engine:
                await engine.add(rt)
                assert (await engine.start(rt.instance_id, wait=True)).status is InstanceStatus.RUNNING
        assert any(e["event"] == "event_subscriber_failed" and e["instance"] == "robust" for e in logs)

    async def test_unexpected_error_in_one_actor_is_recorded_and_spares_the_rest(self, home: Home) -> None:
        """An exception inside one actor is recorded in last_error and that actor is restarted through its
        policy (restart count 1) until it runs; the others keep running."""
        store = _FaultyStore(home)
        bad = make_runtime(store, "bad", faulty())
        good = make_runtime(store, "good", faulty())
        store.fail_on_running = bad.instance_id
        with structlog.testing.capture_logs() as logs:
            async with running_engine(store) as engine:
                await engine.add(bad)
                await engine.add(good)
                inst = await wait_instance(
                    engine,
                    bad.instance_id,
                    lambda i: i.status is InstanceStatus.RUNNING and i.restart_count == 1,
                )
                assert inst.last_error == "internal error: RuntimeError: injected store fault"
                assert store.get(bad.instance_id).status is InstanceStatus.RUNNING
                assert (await engine.start(good.instance_id, wait=True)).status is InstanceStatus.RUNNING
        assert any(e["event"] == "instance_internal_error" and e["instance"] == "bad" for e in logs)
        assert any(e["event"] == "actor_restarted" and e["instance"] == "bad" for e in logs)

    async def test_unknown_instance_is_not_found_and_duplicates_are_refused(self, store: Store) -> None:
        """Commands on an unknown id raise NotFound; adding the same instance twice raises NameExists."""
        rt = make_runtime(store, "once", faulty(), autostart=False)
        async with running_engine(store) as engine:
            with pytest.raises(NotFound):
                engine.get("nope")
            with pytest.raises(NotFound):
                await engine.start("nope")
            await engine.add(rt)
            with pytest.raises(NameExists):
                await engine.add(rt)
            assert [i.name for i in engine.instances()] == ["once"]
            assert engine.runtime(rt.instance_id) is rt


def _start_stranger(port: int) -> subprocess.Popen[bytes]:
    """A process outside the engine listening on ``port``."""
    return subprocess.Popen([*faulty("--tcp", "--port", str(port))], stdout=subprocess.DEVNULL)


class _FaultyStore(Store):
    """A real store that raises once, on the first write of one instance's ``running`` state."""

    fail_on_running = ""

    def update(
        self,
        instance_id: str,
        mutate: Callable[[Instance], object],
        *,
        durable: bool = True,
        wait: bool = True,
        keep: bool = False,
    ) -> Instance:
        result = super().update(instance_id, mutate, durable=durable, wait=wait, keep=keep)
        if instance_id == self.fail_on_running and result.status is InstanceStatus.RUNNING:
            self.fail_on_running = ""
            raise RuntimeError("injected store fault")
        return result
