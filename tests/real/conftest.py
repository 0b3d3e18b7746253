"""The real-agent tier: OpenClaw and Hermes as installed by ``scripts/real_agents.sh``, which says where they
are (``EYRIE_REAL_OPENCLAW``, ``EYRIE_REAL_HERMES``: directories to put first on ``PATH``) or why they are not
(``EYRIE_REAL_SKIP``). Each framework gets one fleet for its whole test class, so the slow starts are paid
once; its processes are checked for leaks when the class ends instead of after every test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import marked_processes, release_claims_of
from tests.real._fleet import FIGURES, RealFleet

_BIN_VARS = {"openclaw": "EYRIE_REAL_OPENCLAW", "hermes": "EYRIE_REAL_HERMES"}


def _bindir(framework: str) -> Path:
    skip = os.environ.get("EYRIE_REAL_SKIP")
    if skip:
        pytest.skip(f"real agents not installed: {skip}")
    value = os.environ.get(_BIN_VARS[framework])
    if not value:
        hint = f"run `bash scripts/real_agents.sh` ({_BIN_VARS[framework]} unset)"
        pytest.skip(f"real agents not installed: {hint}")
    bindir = Path(value)
    if not (bindir / framework).exists():
        pytest.fail(f"{_BIN_VARS[framework]}={bindir} holds no {framework} program")
    return bindir


@pytest.fixture
def no_leaked_processes() -> Iterator[None]:
    """The class's fleet outlives each test by design; `real_fleet` checks for leaks when it ends."""
    yield


@pytest.fixture(scope="class")
def real_fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealFleet]:
    """The test class's framework (its ``FRAMEWORK``) run under a real eyried in a home of its own, with a
    user home of its own (so ``~/.openclaw`` and ``~/.hermes`` are that one's)."""
    framework: str = request.cls.FRAMEWORK
    bindir = _bindir(framework)
    root = tmp_path_factory.mktemp(f"real-{framework}")
    started = time.time()
    fleet = RealFleet(framework, bindir, root)
    try:
        yield fleet
    finally:
        fleet.close()
        left = marked_processes(str(root))
        for proc in left:
            proc.kill()
        release_claims_of(root, started)
        assert not left, f"processes left behind: {[p.pid for p in left]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("real agents: measured")
    for (framework, what), value in FIGURES.items():
        terminalreporter.write_line(f"{framework:<9} {what:<44} {value}")
