"""The lifecycle engine: processes, probes, the state table, restart policy, adoption and log rotation.

Composed by the daemon with the fleet file and the provisioner; on its own it needs only a `Store` and
ready-made `InstanceRuntime`s.
"""

from __future__ import annotations

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
from supervisor.engine.states import check_transition
from supervisor.engine.stop import ProcScanner, StopResult, stop_tree

__all__ = [
    "AdoptedProcess",
    "Engine",
    "Event",
    "ExitStatus",
    "InstanceRuntime",
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
