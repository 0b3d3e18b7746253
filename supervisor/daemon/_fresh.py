"""Provisioning the instances a fleet file adds, all in one batch: one hold of the store lock, one scan of
the store for the names and ports taken, one sync of what was written (see `supervisor.provision`), so a
first start of N instances grows with N rather than N²."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from supervisor.engine.process import current_boot_id
from supervisor.errors import ProvisionError
from supervisor.models import CreateRequest, Instance

if TYPE_CHECKING:
    from supervisor.fleet import FleetFile, ResolvedInstance
    from supervisor.personas import Persona
    from supervisor.provision import Provisioner

__all__ = ["provision_new"]


def provision_new(
    provisioner: Provisioner,
    fleet: FleetFile,
    names: list[str],
    *,
    hold: frozenset[str],
    running_id: Callable[[str], str | None],
) -> dict[str, Instance | Exception]:
    """Provision ``names`` (in their order) as ``fleet`` declares them: each name's instance, or why it could
    not be made. Those in ``hold`` are recorded as wanted stopped (until the next boot). A parent is given as
    its instance id when the engine runs it (``running_id``) or it was provisioned earlier in the batch, else
    by name."""
    made: dict[str, Instance | Exception] = {}
    try:
        with provisioner.batch() as batch:
            for name in names:
                try:
                    resolved = fleet.resolve(name)
                    request, persona = _request(provisioner, resolved, made, running_id)
                    made[name] = batch.add(request, persona, spec=resolved.spec)
                except Exception as exc:  # that instance's own failure: the others go on
                    made[name] = exc
            failed = batch.commit()
    except OSError as exc:  # the store lock or the store directory itself cannot be used
        where = f" ({exc.filename})" if exc.filename else ""
        return {
            name: ProvisionError(f"provisioning {name!r} failed: {exc.strerror or exc}{where}")
            for name in names
        }
    for name, inst in made.items():
        if isinstance(inst, Instance):
            if inst.id in failed:
                made[name] = failed[inst.id]
            elif name in hold:
                made[name] = _held(provisioner, inst)
    return made


def _request(
    provisioner: Provisioner,
    resolved: ResolvedInstance,
    made: dict[str, Instance | Exception],
    running_id: Callable[[str], str | None],
) -> tuple[CreateRequest, Persona | None]:
    persona = provisioner.personas.get(resolved.persona) if resolved.persona else None
    parent_id = resolved.parent
    if resolved.parent:
        if (running := running_id(resolved.parent)) is not None:
            parent_id = running
        elif isinstance(sibling := made.get(resolved.parent), Instance):
            parent_id = sibling.id
    request = CreateRequest(
        name=resolved.name,
        framework=resolved.framework,
        persona_id=resolved.persona,
        hierarchy_role=resolved.role,
        project_id=resolved.project,
        parent_id=parent_id,
        model=resolved.model,
        auto_start=resolved.autostart,
        created_by=resolved.created_by,
        parent_name=resolved.parent,
        project_name=resolved.project_name,
        project_goal=resolved.project_goal,
        project_description=resolved.project_description,
    )
    return request, persona


def _held(provisioner: Provisioner, inst: Instance) -> Instance | Exception:
    """The new instance recorded as wanted stopped until the next boot (it must not start yet)."""
    boot_id = current_boot_id()

    def held(i: Instance) -> None:
        i.desired = "stopped"
        i.desired_boot_id = boot_id

    try:
        return provisioner.store.update(inst.id, held)
    except Exception as exc:
        return exc
