"""Who may do what through the agent API: a pure table of role × action × target, no I/O.

An agent's role is the one its fleet-file declaration gives it. Every agent may read its own record and post
a note. A commander may list the fleet and create, start, stop and remove every talon and captain; a captain
the same for the talons of its own project (whoever created them); a talon, or a standalone instance, nothing
beyond itself. No agent starts, stops or removes itself, and none may touch a commander.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from supervisor.models import HierarchyRole

__all__ = ["Action", "Decision", "Member", "decide", "visible"]


class Action(enum.Enum):
    """What an agent asks for."""

    READ_SELF = "read_self"  # its own record and health
    NOTE = "note"  # post its own free-text note
    LIST = "list"  # the instances it may see
    READ = "read"  # one other instance's record
    CREATE = "create"
    START = "start"
    STOP = "stop"
    REMOVE = "remove"


_MANAGE = frozenset({Action.START, Action.STOP, Action.REMOVE})


@dataclass(frozen=True, slots=True)
class Member:
    """One declared instance as the permission table sees it."""

    name: str
    instance_id: str
    role: HierarchyRole
    project: str = ""
    created_by: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed or not, and why (the reason is logged and, when refused, answered)."""

    allowed: bool
    reason: str


def _may_manage(caller: Member, target: Member) -> bool:
    if caller.role is HierarchyRole.COMMANDER:
        return target.role in (HierarchyRole.TALON, HierarchyRole.CAPTAIN)
    if caller.role is HierarchyRole.CAPTAIN:
        return target.role is HierarchyRole.TALON and target.project == caller.project
    return False


def visible(caller: Member, target: Member) -> bool:
    """True when ``caller`` may see ``target``'s record: itself, or one it may manage."""
    return target.name == caller.name or _may_manage(caller, target)


def _role(member: Member) -> str:
    return member.role.value or "standalone"


def _scope(caller: Member) -> str:
    if caller.role is HierarchyRole.COMMANDER:
        return "a commander manages talons and captains"
    if caller.role is HierarchyRole.CAPTAIN:
        return f"a captain manages the talons of its own project ({caller.project!r})"
    return f"a {_role(caller)} manages nothing beyond itself"


def decide(caller: Member, action: Action, target: Member | None = None) -> Decision:
    """Whether ``caller`` may do ``action`` to ``target`` (to create: the instance it would make)."""
    if action in (Action.READ_SELF, Action.NOTE):
        return Decision(True, "its own record")
    if action is Action.LIST:
        if caller.role in (HierarchyRole.COMMANDER, HierarchyRole.CAPTAIN):
            return Decision(True, _scope(caller))
        return Decision(False, f"{_scope(caller)}: it cannot list the fleet")
    if target is None:
        raise ValueError(f"action {action.value!r} needs a target")
    what = f"{_role(target)} {target.name!r}" + (f" (project {target.project!r})" if target.project else "")
    if action is Action.READ:
        if visible(caller, target):
            return Decision(True, "its own record" if target.name == caller.name else _scope(caller))
        return Decision(False, f"{_scope(caller)}: it cannot see {what}")
    if action in _MANAGE and target.name == caller.name:
        return Decision(False, f"an agent cannot {action.value} itself")
    if _may_manage(caller, target):
        return Decision(True, _scope(caller))
    return Decision(False, f"{_scope(caller)}: it cannot {action.value} {what}")
