"""The respawn path: the race between a watch and its process's end (cancelled from the loop's pidfd
callback, no watcher task), and the room made for open files without raising the daemon's soft limit, so
that every agent is spawned directly with the limit the daemon was started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from supervisor.engine import ExitStatus, spawn
from supervisor.engine._watch import race
from supervisor.testing import faulty

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


class TestRace:
    pytestmark = pytest.mark.anyio

    async def test_the_end_of_the_process_cancels_the_body(self, tmp_path: Path) -> None:
        """A process killed while the body waits: the body is cancelled, the race gives how it ended, and
        the handle is reaped (its pidfd closed, no reader left on the loop: a second race starts cleanly)."""
        proc = spawn(faulty(), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
        unwound = anyio.Event()

        async def body() -> str:
            try:
                proc.send_signal(signal.SIGKILL)
                await anyio.sleep_forever()
            finally:
                unwound.set()
            return "unreachable"

        with anyio.fail_after(10):
            outcome = await race(proc, body)
        assert outcome == ExitStatus(signal=signal.SIGKILL)
        assert unwound.is_set() and proc.exit_status == outcome and not proc.alive()
        with anyio.fail_after(10):
            assert await race(proc, body) == outcome  # ended already: the body is not waited for

    async def test_a_body_that_returns_first_wins_and_the_process_stays_watched(self, tmp_path: Path) -> None:
        """The body's result when it returns first; the process is then still waited for as before."""
        proc = spawn(faulty(), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")

        async def body() -> str:
            await anyio.lowlevel.checkpoint()
            return "ready"

        try:
            assert await race(proc, body) == "ready"
            assert proc.alive()
        finally:
            proc.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            assert await proc.wait() == ExitStatus(signal=signal.SIGKILL)

    async def test_another_task_waiting_for_the_process_does_not_hide_its_end(self, tmp_path: Path) -> None:
        """While another task holds the process's wait, the race still ends when the process does, and
        both learn the same status."""
        proc = spawn(faulty(), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
        seen: list[ExitStatus] = []
        try:
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    seen.append(await proc.wait())

                tg.start_soon(waiter)
                with anyio.fail_after(10):
                    while (stop := proc.on_end(lambda: None)) is not None:  # until the waiter holds it
                        stop()
                        await anyio.lowlevel.checkpoint()

                async def body() -> None:
                    proc.send_signal(signal.SIGTERM)
                    await anyio.sleep_forever()

                with anyio.fail_after(10):
                    outcome = await race(proc, body)
        finally:
            proc.send_signal(signal.SIGKILL)
        assert isinstance(outcome, ExitStatus) and seen == [outcome]

    async def test_a_cancel_from_outside_leaves_the_process_watchable(self, tmp_path: Path) -> None:
        """A race cancelled from outside (a stop) leaves nothing registered: its wait still works."""
        proc = spawn(faulty(), env=ENV, cwd=tmp_path, log_path=tmp_path / "a.log")
        try:
            with anyio.move_on_after(0.05):
                await race(proc, anyio.sleep_forever)
            assert proc.alive()
        finally:
            proc.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            assert await proc.wait() == ExitStatus(signal=signal.SIGKILL)


_PLACEMENT = textwrap.dedent(
    """
    import json, os, resource, sys, time
    from pathlib import Path
    from supervisor.engine import open_files, spawn

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = {"soft": soft}
    open_files.take_note()
    out["room"] = open_files.make_room(100) is not None
    here = Path(sys.argv[1])
    report = "grep 'Max open files' /proc/self/limits > $LIMITS; exec sleep 60"

    def agent(name):
        env = {"PATH": os.environ["PATH"], "LIMITS": str(here / f"{name}.limits")}
        return spawn(("sh", "-c", report), env=env, cwd=here, log_path=here / f"{name}.log")

    def limits(name):
        path = here / f"{name}.limits"
        deadline = time.monotonic() + 10
        while not path.exists() or not path.read_text().strip():
            assert time.monotonic() < deadline, "the agent never reported its limits"
            time.sleep(0.01)
        return [int(w) for w in path.read_text().split()[3:5]]

    started = []
    try:
        started.append(agent("first"))
        pidfds = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]":
                    pidfds.append(int(fd))
            except OSError:  # the listing's own descriptor
                pass
        out["pidfds_above"] = bool(pidfds) and min(pidfds) >= soft
        out["own_after_spawn"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
        out["direct"] = list(open_files.child_command(["x"], "/bin/x")) == [["x"], "/bin/x"]
        out["first_limits"] = limits("first")
        # something else crowds the room below the soft limit: the limit is raised for good
        while (fd := os.open(os.devnull, os.O_RDONLY)) < soft - soft // 8 - 1:
            pass
        os.close(fd)
        started.append(agent("second"))
        out["own_after_crowd"] = list(resource.getrlimit(resource.RLIMIT_NOFILE))
        out["trampoline"] = open_files.child_command(["x"], "/bin/x")[1] != "/bin/x"
        started.append(agent("third"))
        out["later_limits"] = [limits("second"), limits("third")]
        out["carried"] = open_files.reexec_env()
    finally:
        for proc in started:
            proc.send_signal(9)
    print(json.dumps(out))
    """
)


@pytest.mark.skipif(not os.path.exists("/usr/bin/prlimit"), reason="needs util-linux prlimit")
class TestRoomForOpenFiles:
    def test_held_descriptors_go_above_the_soft_limit_and_agents_start_directly(self, tmp_path: Path) -> None:
        """A fleet that needs more than the soft limit: the daemon keeps its soft limit, the pidfd it holds
        for an agent is placed above it, and the agent, exec'd directly, reads that soft limit. When the
        room below it is crowded all the same, the soft limit is raised for good, the next agent goes
        through ``prlimit`` and still reads it; a re-exec carries it."""
        soft, hard = 64, 4096
        run = subprocess.run(
            ["prlimit", f"--nofile={soft}:{hard}", "--", sys.executable, "-c", _PLACEMENT, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["soft"] == soft and out["room"]
        assert out["pidfds_above"]
        assert out["own_after_spawn"] == [soft, hard] and out["direct"]
        assert out["first_limits"] == [soft, hard]
        assert out["own_after_crowd"] == [hard, hard] and out["trampoline"]
        assert out["later_limits"] == [[soft, hard], [soft, hard]]
        assert out["carried"] == {"EYRIE_OPEN_FILES_SOFT": str(soft)}
