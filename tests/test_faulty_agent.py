"""The fault-injecting agent's children: in its process group, and deaf to SIGTERM when asked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from supervisor.engine.procfs import scan
from supervisor.testing import faulty, process_gone
from tests._daemon import wait_for


@pytest.fixture
def agent() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        faulty("--children", "2", "--children-ignore-sigterm"),
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _group(pgid: int) -> list[int]:
    return sorted(info.pid for info in scan(markers=False).values() if info.pgid == pgid and not info.gone)


class TestChildren:
    def test_children_share_the_group_and_ignore_sigterm(self, agent: subprocess.Popen[bytes]) -> None:
        """--children 2 --children-ignore-sigterm: SIGTERM to the group ends the agent and leaves both
        children; SIGKILL to the group ends them."""
        wait_for(lambda: len(_group(agent.pid)) == 3, 10, "two children")
        children = [pid for pid in _group(agent.pid) if pid != agent.pid]
        os.killpg(agent.pid, signal.SIGTERM)
        assert agent.wait(10) == 0
        assert _group(agent.pid) == children
        os.killpg(agent.pid, signal.SIGKILL)
        wait_for(lambda: all(process_gone(pid) for pid in children), 10, "the children to end")
