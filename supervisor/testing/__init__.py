"""Helpers for testing code that supervises processes, shipped with the package.

Instances with small policies, a running engine that always shuts down, an event recorder, waiting on
conditions with deadlines, a log capture, the in-memory control target (`MemoryTarget`) for the API, the
client and ``eyriectl``, the fault-injecting agent, run as ``python -m supervisor.testing.faulty_agent``
(its argv from `faulty`), and the attacker agent that proves confinement (`hostile`).

    async with running_engine(store) as engine:
        runtime = make_runtime(store, "crashy", faulty("--crash-after", "0.2"))
        await engine.add(runtime)
        await wait_for(lambda: engine.get(runtime.instance_id).restart_count >= 2)

Names load on first use, so the fault-injecting agent starts without importing the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor._lazy import lazy_exports

if TYPE_CHECKING:
    from supervisor.testing._control import MemoryTarget
    from supervisor.testing._engine import (
        EventRecorder,
        fast_health,
        fast_restart,
        make_instance,
        make_runtime,
        running_engine,
        wait_instance,
    )
    from supervisor.testing._logs import capture_logs
    from supervisor.testing._processes import (
        FAULTY_AGENT,
        HOSTILE_AGENT,
        PROGRAMS_DIR,
        faulty,
        free_port,
        hostile,
        process_gone,
        reap,
    )
    from supervisor.testing._waiting import wait_for

__all__ = [
    "FAULTY_AGENT",
    "HOSTILE_AGENT",
    "PROGRAMS_DIR",
    "EventRecorder",
    "MemoryTarget",
    "capture_logs",
    "fast_health",
    "fast_restart",
    "faulty",
    "free_port",
    "hostile",
    "make_instance",
    "make_runtime",
    "process_gone",
    "reap",
    "running_engine",
    "wait_for",
    "wait_instance",
]


__getattr__, __dir__ = lazy_exports(globals())
