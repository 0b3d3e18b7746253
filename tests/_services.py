"""An engine's shared services built bare, for tests that drive the launch path without an engine."""

from __future__ import annotations

from pathlib import Path

import anyio

from supervisor.engine._services import Crowd, Services
from supervisor.engine._write_batch import WriteBatch
from supervisor.engine.stop import ProcScanner
from supervisor.port_claims import ClaimRegistry
from supervisor.store import Store


def bare_services(store: Store, claims: Path, threads: int = 4) -> Services:
    """Services over ``store`` with port claims under ``claims``: no sweeps, no events."""
    limiter = anyio.CapacityLimiter(threads)
    return Services(
        store=store,
        boot_id="boot",
        scanner=ProcScanner(),
        threads=limiter,
        request_sweep=lambda instance_id, urgent: None,
        spawning=Crowd(),
        writing=Crowd(),
        emit=lambda event: None,
        claims=ClaimRegistry(claims),
        batch=WriteBatch(limiter),
        port_checks=WriteBatch(limiter),
        spawns=WriteBatch(limiter),
    )
