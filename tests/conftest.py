"""Shared fixtures: an isolated home per test, the asyncio backend, a check that nothing leaks, and the
machine-wide port claims of a test's homes given back when it ends."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from supervisor.paths import Home
from supervisor.port_claims import ClaimRegistry

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # started as a shell's background job, which ignores Ctrl-C: the CLI's children would inherit that, and
    # the tests that press Ctrl-C need it to reach them as it does in a terminal
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh ``$EYRIE_HOME`` for this test only."""
    root = tmp_path / "eyrie"
    root.mkdir()
    monkeypatch.setenv("EYRIE_HOME", str(root))
    return Home(root)


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            in_cmdline = any(marker in part for part in proc.cmdline())
            if in_cmdline or marker in proc.environ().get("EYRIE_HOME", ""):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes(tmp_path: Path) -> Iterator[None]:
    """Fail the test if it leaves a child behind, or any process that runs out of its temp dir."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    leaked = [p for p in me.children(recursive=True) if p.pid not in before and p.status() != "zombie"]
    leaked += [p for p in marked_processes(str(tmp_path)) if p.pid != me.pid and p not in leaked]
    if leaked:
        desc = []
        for p in leaked:
            try:
                desc.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except psutil.Error:
                desc.append(str(p.pid))
            with contextlib.suppress(psutil.Error):
                p.kill()
        pytest.fail("test leaked processes:\n  " + "\n  ".join(desc))


def release_claims_of(root: Path, since: float) -> None:
    """Give back the claims that homes under ``root`` made since ``since`` in the shared claims directory:
    they would otherwise stay valid (pytest keeps recent temp dirs) and fill the port range run after run."""
    registry = ClaimRegistry()
    try:
        entries = [e for e in os.scandir(registry.root) if e.name.isdigit()]
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.stat(follow_symlinks=False).st_mtime < since - 1:
                continue
        claim = registry.read(int(entry.name))
        if claim is not None and claim.owner is not None and claim.owner.home.startswith(str(root)):
            registry.release(claim.port, claim.owner)


@pytest.fixture(autouse=True)
def release_port_claims(tmp_path: Path) -> Iterator[None]:
    """The claims of the test's homes, given back when it ends."""
    started = time.time()
    yield
    release_claims_of(tmp_path, started)
