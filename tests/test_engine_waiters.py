"""Waiting on an actor: start waiters settled by attempt number, stop waiters, and the loop's doorbell."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from supervisor.engine._waiters import Doorbell, Waiters


class TestWaiters:
    def test_a_start_during_an_attempt_is_settled_by_that_attempt(self) -> None:
        """A start waiter taken while an attempt runs is released by that attempt's settled status."""
        waiters = Waiters()
        waiters.attempt_begins()
        waiter = waiters.start()
        waiters.attempt_settled()
        assert waiter.event.is_set()

    def test_a_restart_waits_for_the_next_attempt(self) -> None:
        """A restart (``current_counts`` false): the attempt under way does not settle it: the next does."""
        waiters = Waiters()
        waiters.attempt_begins()
        waiter = waiters.start(current_counts=False)
        waiters.attempt_settled()
        assert not waiter.event.is_set()
        waiters.attempt_ends()
        waiters.attempt_begins()
        waiters.attempt_settled()
        assert waiter.event.is_set()

    def test_a_settled_status_outside_an_attempt_releases_nobody(self) -> None:
        """The stop a restart begins with (no attempt under way) does not release start waiters."""
        waiters = Waiters()
        waiter = waiters.start()
        waiters.attempt_settled()
        assert not waiter.event.is_set()

    def test_stop_waiters_are_released_once_and_all_at_the_end(self) -> None:
        """``stopped`` releases the stop waiters so far; ``release_all`` releases everyone left."""
        waiters = Waiters()
        first = waiters.stop()
        waiters.stopped()
        later, start = waiters.stop(), waiters.start()
        assert first.is_set() and not later.is_set()
        waiters.release_all()
        assert later.is_set() and start.event.is_set()


class TestDoorbell:
    @pytest.mark.anyio
    async def test_a_ring_while_busy_is_kept_for_the_next_wait(self) -> None:
        """A ring before the wait makes the wait return at once, and only once."""
        bell = Doorbell()
        bell.ring()
        with anyio.fail_after(1):
            await bell.wait()
        with anyio.move_on_after(0.05) as scope:
            await bell.wait()
        assert scope.cancelled_caught

    @pytest.mark.anyio
    async def test_a_ring_wakes_a_waiting_loop(self) -> None:
        """A ring from another task ends a wait in progress."""
        bell = Doorbell()
        with anyio.fail_after(1):
            async with anyio.create_task_group() as tg:
                tg.start_soon(bell.wait)
                await anyio.lowlevel.checkpoint()
                bell.ring()
