"""Child programs for tests and looks at the process table: the fault-injecting agent's command line, a free
port, reaping what a detached engine left behind, and telling a process gone."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from supervisor.engine.pidfd import collect
from supervisor.engine.procfs import exited

__all__ = [
    "FAULTY_AGENT",
    "HOSTILE_AGENT",
    "PROGRAMS_DIR",
    "faulty",
    "free_port",
    "hostile",
    "process_gone",
    "reap",
]

FAULTY_AGENT = "supervisor.testing.faulty_agent"
"""The fault-injecting agent, run as ``python -m supervisor.testing.faulty_agent``."""

HOSTILE_AGENT = "supervisor.testing.hostile_agent"
"""The attacker agent, run as ``python -m supervisor.testing.hostile_agent``."""

PROGRAMS_DIR = Path(__file__).resolve().parent.parent.parent / "tests" / "programs"
"""Where the test-only child programs live in a source checkout."""


def faulty(*flags: str) -> tuple[str, ...]:
    """argv running the fault-injecting agent with ``flags`` under this interpreter."""
    return (sys.executable, "-m", FAULTY_AGENT, *flags)


def hostile(*flags: str) -> tuple[str, ...]:
    """argv running the attacker agent with ``flags`` under this interpreter."""
    return (sys.executable, "-m", HOSTILE_AGENT, *flags)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port that nothing on 127.0.0.1 uses right now, and not one handed out before in this process:
    the kernel may give the same port to two binds in a row, and two instances made one after the other
    must not share one."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def reap(pid: int) -> bool:
    """Collect ``pid`` if it is an exited child of ours (left behind by a detached engine); True once gone."""
    try:
        return collect(os.P_PID, pid) is not None
    except ChildProcessError:
        return True


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (or is a zombie waiting for its parent)."""
    return exited(pid)
