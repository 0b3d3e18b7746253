"""A running instance's watch with less held per instance: one cancel scope for the process's end and a memory
limit's trip, a process handle without an idle lock, a liveness wait on a bare future. Each ends, and says
why, as before."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from supervisor.engine import ExitStatus, SpawnedProcess, spawn
from supervisor.engine._liveness_pass import LivenessPass
from supervisor.engine._watch import race_liveness
from supervisor.engine.probes import ProbeResult
from supervisor.engine.resources import LimitWatch

pytestmark = pytest.mark.anyio

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture
async def sleeper(tmp_path: Path) -> AsyncIterator[SpawnedProcess]:
    proc = spawn(("sleep", "60"), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        with anyio.fail_after(5):
            await proc.wait()


async def _forever() -> ProbeResult:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def _until_ended(proc: SpawnedProcess) -> None:
    """Wait, on this thread, until the process has ended (its pidfd is readable)."""
    deadline = time.monotonic() + 5
    while proc.alive():
        assert time.monotonic() < deadline, "the process never ended"
        time.sleep(0.001)


class TestRaceLiveness:
    async def test_a_trip_ends_the_watch_with_its_reason(self, sleeper: SpawnedProcess) -> None:
        """The sampler's trip cancels the watch, which fails with the reason; the process lives on."""
        limits = LimitWatch()
        async with anyio.create_task_group() as tg:
            found: list[ProbeResult | ExitStatus] = []

            async def watch() -> None:
                found.append(await race_liveness(sleeper, _forever, limits))

            tg.start_soon(watch)
            await anyio.wait_all_tasks_blocked()
            limits.trip("memory 900 MiB over the limit of 512 MiB")
        assert found == [ProbeResult(False, "memory 900 MiB over the limit of 512 MiB")]
        assert sleeper.alive()
        limits.trip("after the watch")  # no scope any more: nothing happens
        assert limits.reason == "memory 900 MiB over the limit of 512 MiB"

    async def test_the_process_end_wins_over_a_trip(self, sleeper: SpawnedProcess) -> None:
        """A process that ended is reported as ended, also when a trip came at the same time."""
        limits = LimitWatch()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                found: list[ProbeResult | ExitStatus] = []

                async def watch() -> None:
                    found.append(await race_liveness(sleeper, _forever, limits))

                tg.start_soon(watch)
                await anyio.wait_all_tasks_blocked()
                sleeper.send_signal(signal.SIGKILL)
                _until_ended(sleeper)  # the loop has not seen the end yet
                limits.trip("over the limit")
        assert found == [ExitStatus(signal=9)]

    async def test_the_body_result_and_a_new_watch_forget_the_last_reason(
        self, sleeper: SpawnedProcess
    ) -> None:
        """A watch that returns gives its result; the next one starts without the last trip's reason."""
        limits = LimitWatch()
        limits.guard(anyio.CancelScope())
        limits.trip("old reason")

        async def failed() -> ProbeResult:
            return ProbeResult(False, "liveness failed 3 times")

        assert await race_liveness(sleeper, failed, limits) == ProbeResult(False, "liveness failed 3 times")
        assert limits.reason == ""


class TestProcessWaits:
    async def test_a_wait_waits_for_the_watch_to_stop(self, sleeper: SpawnedProcess) -> None:
        """While `on_end` watches, a wait in another task neither registers the descriptor nor returns
        early; once the watch stops, it reaps the process."""
        ended = anyio.Event()
        stop = sleeper.on_end(ended.set)
        assert stop is not None
        assert sleeper.on_end(lambda: None) is None  # one watcher at a time
        statuses: list[ExitStatus] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def wait() -> None:
                    statuses.append(await sleeper.wait())

                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                sleeper.send_signal(signal.SIGKILL)
                await ended.wait()
                assert statuses == []
                stop()
        assert statuses == [ExitStatus(signal=9)]
        assert sleeper.on_end(lambda: None) is None  # ended: nothing to watch

    async def test_waits_in_two_tasks_both_get_the_status(self, sleeper: SpawnedProcess) -> None:
        """Two waits at once share the descriptor one after the other; `on_end` refuses meanwhile."""
        statuses: list[ExitStatus] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def wait() -> None:
                    statuses.append(await sleeper.wait())

                tg.start_soon(wait)
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                assert sleeper.on_end(lambda: None) is None
                sleeper.send_signal(signal.SIGKILL)
        assert statuses == [ExitStatus(signal=9)] * 2


class _Due:
    """A watch of the liveness pass whose check always fails (the pass hands the result over)."""

    def __init__(self, due: float) -> None:
        self.next_live = due

    def check_now(self) -> ProbeResult | None:
        return ProbeResult(False, "not alive")

    def absorb(self, result: ProbeResult, checked_at: datetime, now: float) -> bool:
        return False


class TestLivenessWait:
    async def test_a_due_check_wakes_the_waiting_watch_with_its_result(self) -> None:
        """The pass checks the watch when due and hands it the result it must act on."""
        shared = LivenessPass()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(shared.run)
                await anyio.wait_all_tasks_blocked()
                found = await shared.next_result(_Due(anyio.current_time() + 0.05), math.inf)
                tg.cancel_scope.cancel()
        assert found == ProbeResult(False, "not alive")

    async def test_the_deadline_ends_the_wait_without_a_result(self) -> None:
        """At ``until`` (a restart count's reset) the wait ends with None, the watch no longer waiting."""
        shared = LivenessPass()
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(shared.run)
                await anyio.wait_all_tasks_blocked()
                found = await shared.next_result(_Due(math.inf), anyio.current_time() + 0.05)
                tg.cancel_scope.cancel()
        assert found is None

    async def test_the_pass_ending_wakes_every_wait_and_a_cancel_ends_one(self) -> None:
        """When the pass stops, each waiting watch gets None (it goes back to a timer of its own); a
        cancelled wait ends at once."""
        shared = LivenessPass()
        found: list[ProbeResult | None] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as outer, anyio.create_task_group() as tg:
                tg.start_soon(shared.run)

                async def wait() -> None:
                    found.append(await shared.next_result(_Due(math.inf), math.inf))

                outer.start_soon(wait)
                outer.start_soon(wait)
                with anyio.CancelScope() as cancelled:
                    cancelled.cancel()
                    await shared.next_result(_Due(math.inf), math.inf)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        assert found == [None, None]
