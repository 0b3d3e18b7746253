"""``eyriectl reload --dry-run``: what a reload would do with the fleet file as it is now, applying nothing.

The plan is the reconciler's own diff (`supervisor.fleet.diff_fleets` against the file in force), sorted the
way `Reconciler.apply` sorts it: a process change to an instance the engine does not run yet is an addition.
Its ``problems`` name each provider secret the fleet file refers to and the home lacks: such an instance would
not start. A new ``PROJECT.md`` restarts the instances whose framework reads its files only at start and is
applied live to the others; a project ``projects:`` does not list is a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from supervisor.control._reload import ReloadResult
from supervisor.errors import EyrieError
from supervisor.fleet import diff_fleets, load_fleet
from supervisor.models import utcnow
from supervisor.paths import Home
from supervisor.secret_files import SecretFiles

if TYPE_CHECKING:
    from collections.abc import Collection

    from supervisor.daemon.reconciler import Reconciler
    from supervisor.fleet import FleetDiff, FleetFile

__all__ = ["plan", "plan_at_start", "plan_reload", "secret_problems"]


async def plan_reload(reconciler: Reconciler) -> ReloadResult:
    """The plan for the fleet file on disk; an invalid file is reported as a reload would report it."""
    try:
        new = await anyio.to_thread.run_sync(load_fleet, reconciler.fleet_path)
    except EyrieError as exc:
        return ReloadResult(ok=False, error=str(exc), at=utcnow(), dry_run=True)
    return plan(reconciler, new)


def plan(reconciler: Reconciler, new: FleetFile) -> ReloadResult:
    """What `Reconciler.apply` would do with ``new``."""
    runs = reconciler.managed()
    diff = diff_fleets(reconciler.fleet if runs else None, new)
    restarts, live = _context_outcomes(diff, new)
    return ReloadResult(
        ok=True,
        dry_run=True,
        at=utcnow(),
        added=[*diff.added, *(name for name in diff.process_changed if name not in runs)],
        removed=list(diff.removed),
        restarted=[name for name in [*diff.process_changed, *restarts] if name in runs],
        updated=[name for name in [*live, *diff.policy_changed] if name in runs],
        unchanged=list(diff.unchanged),
        problems=secret_problems(new, reconciler.home),
        warnings=new.project_warnings(),
    )


def _context_outcomes(diff: FleetDiff, new: FleetFile) -> tuple[list[str], list[str]]:
    """The instances with a new ``PROJECT.md``: those it restarts (their framework reads its files at
    start), and those that see it live."""
    restarts = [name for name in diff.context_changed if new.resolve(name).spec.reads_files == "at_start"]
    return restarts, [name for name in diff.context_changed if name not in restarts]


def secret_problems(fleet: FleetFile, home: Home) -> list[str]:
    """The provider secrets ``fleet`` names and ``home`` lacks, one line each."""
    uses = {name: r.secrets for name, r in fleet.resolve_all().items() if r.secrets}
    return SecretFiles(home).missing(uses)


def plan_at_start(new: FleetFile, applied: FleetFile | None, stored: Collection[str]) -> ReloadResult:
    """What eyried would do with ``new`` at its next start, without a daemon to ask: a declared instance not
    in ``stored`` (the names provisioned) is added; one the fleet last ``applied`` declared and ``new`` does
    not is removed; one whose process declaration changed since is restarted (a running process is adopted,
    then restarted); the rest are adopted or started as they are."""
    names = new.names()
    added = [name for name in names if name not in stored]
    if applied is None:
        unchanged = [name for name in names if name in stored]
        return ReloadResult(ok=True, dry_run=True, at=utcnow(), added=added, unchanged=unchanged)
    diff = diff_fleets(applied, new)
    restarts, live = _context_outcomes(diff, new)
    restarted = [name for name in [*diff.process_changed, *restarts] if name in stored]
    updated = [name for name in [*live, *diff.policy_changed] if name in stored]
    return ReloadResult(
        ok=True,
        dry_run=True,
        at=utcnow(),
        added=added,
        removed=[name for name in diff.removed if name in stored],
        restarted=restarted,
        updated=updated,
        unchanged=[name for name in names if name in stored and name not in {*restarted, *updated}],
        warnings=new.project_warnings(),
    )
