"""The lifecycle engine: processes, probes, the state table, restart policy, adoption and log rotation.

Composed by the daemon with the fleet file and the provisioner; on its own it needs only a `Store` and
ready-made `InstanceRuntime`s. Names load on first use, so that importing a light module such as
``supervisor.engine.events`` (the CLI does) does not pull in processes, probes and psutil.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor._lazy import lazy_exports

if TYPE_CHECKING:
    from supervisor.engine.engine import Engine
    from supervisor.engine.events import Event
    from supervisor.engine.probes import ProbeContext, ProbeResult, check
    from supervisor.engine.process import (
        AdoptedProcess,
        ExitStatus,
        ProcessHandle,
        SpawnedProcess,
        current_boot_id,
        spawn,
    )
    from supervisor.engine.runtime import InstanceRuntime
    from supervisor.engine.states import Phase, check_transition
    from supervisor.engine.stop import ProcScanner, StopResult, stop_tree

__all__ = [
    "AdoptedProcess",
    "Engine",
    "Event",
    "ExitStatus",
    "InstanceRuntime",
    "Phase",
    "ProbeContext",
    "ProbeResult",
    "ProcScanner",
    "ProcessHandle",
    "SpawnedProcess",
    "StopResult",
    "check",
    "check_transition",
    "current_boot_id",
    "spawn",
    "stop_tree",
]


__getattr__, __dir__ = lazy_exports(globals())
