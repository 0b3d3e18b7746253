"""The descriptors of a respawn: the daemon holds no instance's log file between the turns that write its
lines (so a child inherits one descriptor per instance fewer), and a child, respawned or not, starts with
its stdin, its own log as stdout and stderr, and nothing else: no other agent's log or pidfd."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest

from supervisor.engine._supervisor_lines import SupervisorLines
from supervisor.engine.engine import Engine
from supervisor.engine.runtime import InstanceRuntime
from supervisor.models import InstanceStatus
from supervisor.paths import Home
from supervisor.store import Store
from supervisor.testing import fast_restart, make_runtime, running_engine, wait_for, wait_instance

pytestmark = pytest.mark.anyio


def _held_on(path: Path, pid: int | str = "self") -> list[str]:
    """The descriptors of process ``pid`` open on ``path``."""
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                held.append(fd)
        except OSError:
            continue
    return held


def _let_go(path: Path) -> bool:
    return not _held_on(path)


def _only(pid: int, expected: dict[int, str]) -> bool:
    return _descriptors(pid) == expected


def _descriptors(pid: int) -> dict[int, str]:
    """What each descriptor of process ``pid`` points at."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return found


class TestLinesLetGo:
    async def test_the_lines_of_one_turn_share_one_open_and_it_is_let_go_after(self, tmp_path: Path) -> None:
        """Two lines written in one turn of the event loop open the log once; once the turn is over, no
        descriptor on it is left open, and a later line opens it again and lands after them."""
        log = tmp_path / "agent.log"
        lines = SupervisorLines()
        lines.write(log, "pid 1 exited: killed by signal 9")
        lines.write(log, "started pid 2")
        assert len(_held_on(log)) == 1
        await wait_for(lambda: not _held_on(log), 5.0, what="the log let go")
        lines.write(log, "stopped")
        told = [line.split(" eyried: ", 1)[1] for line in log.read_text().splitlines()]
        assert told == ["pid 1 exited: killed by signal 9", "started pid 2", "stopped"]
        await wait_for(lambda: not _held_on(log), 5.0, what="the log let go again")

    def test_without_an_event_loop_the_file_is_kept_until_closed(self, tmp_path: Path) -> None:
        """Written where no event loop runs (a tool, a test), the descriptor stays until `close`."""
        log = tmp_path / "agent.log"
        lines = SupervisorLines()
        lines.write(log, "started pid 1")
        assert len(_held_on(log)) == 1
        lines.close()
        assert not _held_on(log)


async def _two_running_one_respawned(engine: Engine, store: Store) -> tuple[list[InstanceRuntime], int]:
    """Two `sleep` agents started, the first SIGKILLed and running again: their runtimes, its new pid."""
    restart = fast_restart(policy="always", initial_delay=0.0)
    rts = [make_runtime(store, f"agent-{i}", ["sleep", "600"], restart=restart) for i in range(2)]
    for rt in rts:
        await engine.add(rt)
        await engine.start(rt.instance_id, wait=True)
    victim = engine.get(rts[0].instance_id).pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    inst = await wait_instance(
        engine,
        rts[0].instance_id,
        lambda i: i.status is InstanceStatus.RUNNING and i.pid not in (None, victim),
        timeout=10.0,
    )
    assert inst.pid is not None
    return rts, inst.pid


class TestChildDescriptors:
    async def test_a_running_fleet_holds_a_pidfd_per_instance_and_no_log(self, home: Home) -> None:
        """Two running instances, one respawned after a SIGKILL: the engine holds no descriptor on either
        log once their lines are written, and each log holds its ``started pid`` lines."""
        store = Store(home)
        async with running_engine(store) as engine:
            rts, _ = await _two_running_one_respawned(engine, store)
            for rt in rts:
                await wait_for(functools.partial(_let_go, rt.log_path), 5.0, what=f"{rt.name}'s log let go")
                started = [
                    line for line in rt.log_path.read_text().splitlines() if "eyried: started pid" in line
                ]
                assert len(started) == (2 if rt is rts[0] else 1)

    async def test_a_respawned_child_gets_no_descriptor_of_another_agent(self, home: Home) -> None:
        """A child killed and respawned while another agent runs: the new child has stdin on /dev/null,
        stdout and stderr on its own log, and no other descriptor (neither agent's pidfd, the other's log,
        nor any of the engine's)."""
        store = Store(home)
        async with running_engine(store) as engine:
            rts, respawned = await _two_running_one_respawned(engine, store)
            for rt, pid in ((rts[0], respawned), (rts[1], engine.get(rts[1].instance_id).pid)):
                assert pid is not None
                expected = {0: os.devnull, 1: str(rt.log_path), 2: str(rt.log_path)}
                # its dynamic loader may still have a library open for a moment after the exec
                await wait_for(functools.partial(_only, pid, expected), 5.0, what="0, 1, 2 alone")
