"""An instance's ``PROJECT.md``, made current before each runtime is built for it.

The file says what the fleet file gives now (the project's name, goal and description, the parent); its
digest becomes part of what the process is started from when the framework reads its files only at start,
so a change restarts such an agent and only such an agent.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from supervisor.errors import NotFound, PersonaError

if TYPE_CHECKING:
    from supervisor.fleet import ResolvedInstance
    from supervisor.models import Instance
    from supervisor.provision import Provisioner

__all__ = ["sync_project_file"]


def sync_project_file(provisioner: Provisioner, resolved: ResolvedInstance, inst: Instance) -> str:
    """Write the instance's ``PROJECT.md`` if it differs; the digest for the launch hash (``""`` when its
    framework reads its files live, or it has no such file)."""
    persona = None
    if resolved.persona:
        with contextlib.suppress(NotFound, PersonaError):  # gone since provisioning: the shipped template
            persona = provisioner.personas.get(resolved.persona)
    digest = provisioner.write_project_file(inst, resolved.project_context(), persona)
    return digest if resolved.spec.reads_files == "at_start" else ""
