"""`InheritedChildren`: what a re-executed eyried finds is reaped, except what the engine watches."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import psutil
import pytest

from supervisor.daemon._children import InheritedChildren, Reaped
from supervisor.testing import wait_for


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Three sleeping children; whatever a test leaves of them is killed and waited for."""
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def _held(procs: list[subprocess.Popen[bytes]], busy: set[int]) -> InheritedChildren:
    return InheritedChildren({p.pid: os.pidfd_open(p.pid) for p in procs}, lambda: busy)


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class TestInheritedChildren:
    def test_take_holds_every_current_child(self, children: list[subprocess.Popen[bytes]]) -> None:
        """take() holds a pidfd for each child this process has, and close() lets them run on."""
        held = InheritedChildren.take(set)
        try:
            assert {p.pid for p in children} <= held.pids
        finally:
            held.close()
        assert all(p.poll() is None for p in children)

    def test_ended_child_is_reaped_with_its_status(self, children: list[subprocess.Popen[bytes]]) -> None:
        """A held child that ended is reaped (no zombie left) and reported with the signal that killed it."""
        held = _held(children, set())
        try:
            assert held.reap() == []
            victim = children[0]
            victim.send_signal(signal.SIGKILL)
            _wait(lambda: _zombie(victim.pid))
            assert held.reap() == [Reaped(victim.pid, "killed by SIGKILL")]
            assert _gone(victim.pid)
            assert len(held) == 2
        finally:
            held.close()

    def test_a_pid_the_engine_watches_waits_for_the_engine(
        self, children: list[subprocess.Popen[bytes]]
    ) -> None:
        """An ended child the engine still records is left to it; once the engine lets go, it is reaped."""
        busy = {children[0].pid}
        held = _held(children, busy)
        try:
            children[0].send_signal(signal.SIGTERM)
            _wait(lambda: _zombie(children[0].pid))
            assert held.reap() == []
            assert held.waiting
            assert _zombie(children[0].pid)
            busy.clear()
            assert held.reap() == [Reaped(children[0].pid, "killed by SIGTERM")]
            assert not held.waiting
        finally:
            held.close()

    def test_a_child_the_engine_reaped_is_let_go(self, children: list[subprocess.Popen[bytes]]) -> None:
        """A watched child that the engine reaps itself is dropped without a report."""
        busy = {children[1].pid}
        held = _held(children, busy)
        try:
            children[1].send_signal(signal.SIGKILL)
            _wait(lambda: _zombie(children[1].pid))
            assert held.reap() == []
            assert children[1].wait() == -signal.SIGKILL  # the engine's own waitid
            busy.clear()
            assert held.reap() == []
            assert len(held) == 2
            assert not held.waiting
        finally:
            held.close()

    @pytest.mark.anyio
    async def test_watch_reaps_as_children_end(self, children: list[subprocess.Popen[bytes]]) -> None:
        """watch() reaps each child when it ends, without being asked."""
        held = _held(children, set())
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(held.watch)
                for proc in children:
                    proc.send_signal(signal.SIGKILL)
                await wait_for(lambda: len(held) == 0, what="every child reaped")
                tg.cancel_scope.cancel()
            assert all(_gone(p.pid) for p in children)
        finally:
            held.close()
