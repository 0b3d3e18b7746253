"""The hierarchy rules, the seed's "exactly one orchestrator" made exact.

A fleet in which any instance has a role (commander, captain, talon) has exactly one commander; a fleet of
standalone instances needs none. At most one captain per project. A talon's parent is a captain of the same
project. A parent must be declared. Parent links never form a cycle. Every violation is reported at once, each
naming the instances involved.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from supervisor.errors import HierarchyError
from supervisor.fleet.sections import InstanceDecl
from supervisor.models import HierarchyRole

__all__ = ["check_hierarchy"]


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def check_hierarchy(instances: Sequence[InstanceDecl]) -> None:
    """Raise `HierarchyError` listing every rule the declared instances break."""
    by_name = {decl.name: decl for decl in instances}
    problems: list[str] = []

    with_role = [d.name for d in instances if d.role is not HierarchyRole.STANDALONE]
    commanders = [d.name for d in instances if d.role is HierarchyRole.COMMANDER]
    if with_role and not commanders:
        problems.append(
            f"instances with a role ({_names(with_role)}) need exactly one commander; there is none"
        )
    elif len(commanders) > 1:
        problems.append(f"exactly one commander is allowed; found {len(commanders)}: {_names(commanders)}")

    captains: dict[str, list[str]] = defaultdict(list)
    for d in instances:
        if d.role is HierarchyRole.CAPTAIN:
            captains[d.project].append(d.name)
    for project, names in captains.items():
        if len(names) > 1:
            where = f"project {project!r}" if project else "no project"
            problems.append(f"at most one captain per project; {where} has {len(names)}: {_names(names)}")

    for d in instances:
        if d.parent and d.parent not in by_name:
            problems.append(f"instance {d.name!r} has parent {d.parent!r}, which is not declared")
        if d.role is not HierarchyRole.TALON:
            continue
        parent = by_name.get(d.parent)
        if not d.parent:
            problems.append(f"talon {d.name!r} has no parent; a talon reports to a captain of its project")
        elif parent is None:
            continue
        elif parent.role is not HierarchyRole.CAPTAIN:
            role = parent.role.value or "standalone"
            problems.append(
                f"talon {d.name!r} has parent {parent.name!r}, a {role}; a talon's parent is a captain"
            )
        elif parent.project != d.project:
            problems.append(
                f"talon {d.name!r} (project {d.project!r}) has parent {parent.name!r} from another project"
                f" ({parent.project!r}); a talon's captain leads its own project"
            )

    problems.extend(_cycles(by_name))
    if problems:
        raise HierarchyError("; ".join(problems))


def _cycles(by_name: dict[str, InstanceDecl]) -> list[str]:
    """One message per parent cycle, naming its members in order."""
    found: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in by_name:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in by_name and state.get(node) != 2:
            if state.get(node) == 1:
                cycle = path[path.index(node) :]
                found.append(f"parent links form a cycle: {' → '.join([*cycle, node])}")
                break
            state[node] = 1
            path.append(node)
            node = by_name[node].parent or None
        for name in path:
            state[name] = 2
    return found
