"""The fleet file: its sections and resolution, loading with precise errors, comment-keeping edits,
hierarchy rules, diffs and the starting profiles of ``eyriectl init``.

Names load on first use, so importing the package for one name (a type, the diff) does not load the YAML
machinery behind the others. The policies live in `supervisor.policies`, below this package and the
engine; they are exported here as the sections of the fleet file's ``defaults``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisor._lazy import lazy_exports

if TYPE_CHECKING:
    from supervisor.fleet.diff import FleetDiff, diff_fleets
    from supervisor.fleet.edit import (
        add_instance,
        remove_instance,
        remove_project,
        set_autostart,
        set_project,
    )
    from supervisor.fleet.hierarchy import check_hierarchy
    from supervisor.fleet.loader import load_fleet, parse_fleet
    from supervisor.fleet.profiles import PROFILES, render_profile, write_initial_fleet
    from supervisor.fleet.resolved import ResolvedInstance
    from supervisor.fleet.schema import FleetFile
    from supervisor.fleet.sections import (
        ControlTCP,
        DaemonSettings,
        Defaults,
        FrameworkOverride,
        HealthOverride,
        InstanceDecl,
        LogOverride,
        RestartOverride,
    )
    from supervisor.policies import HealthPolicy, LogPolicy, RestartPolicy

__all__ = [
    "PROFILES",
    "ControlTCP",
    "DaemonSettings",
    "Defaults",
    "FleetDiff",
    "FleetFile",
    "FrameworkOverride",
    "HealthOverride",
    "HealthPolicy",
    "InstanceDecl",
    "LogOverride",
    "LogPolicy",
    "ResolvedInstance",
    "RestartOverride",
    "RestartPolicy",
    "add_instance",
    "check_hierarchy",
    "diff_fleets",
    "load_fleet",
    "parse_fleet",
    "remove_instance",
    "remove_project",
    "render_profile",
    "set_autostart",
    "set_project",
    "write_initial_fleet",
]


__getattr__, __dir__ = lazy_exports(globals())
