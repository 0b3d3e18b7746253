"""Reading the fleet file whole before anything of it is applied: its schema (the loader), then every
declared instance's runtime built on trial (probes, ports, commands, placeholders). A file that fails
either is rejected with every problem found, so that a reload is all or nothing.

Also what eyried runs when the file is invalid as it starts: the fleet last applied, else none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import structlog

from supervisor.control._reload import ReloadResult
from supervisor.daemon._last_applied import load_applied
from supervisor.daemon.runtime import check_declaration
from supervisor.errors import ConfigurationError, EyrieError
from supervisor.fleet import FleetFile, load_fleet
from supervisor.models import utcnow

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from pathlib import Path

    from supervisor.fleet import ResolvedInstance
    from supervisor.store import Store

__all__ = ["declaration_problems", "fallback_fleet", "read_checked"]

log = structlog.get_logger("supervisor.daemon")


async def read_checked(
    path: Path,
    store: Store,
    *,
    in_force: Mapping[str, ResolvedInstance] | None = None,
    failed: Collection[str] = (),
) -> FleetFile | ReloadResult:
    """The fleet file at ``path``, checked whole; else the rejection (``ok`` false) saying why.

    A declaration the same as the one ``in_force`` passed when it was applied: it is not tried again,
    unless its instance ``failed``.
    """
    try:
        new = await anyio.to_thread.run_sync(load_fleet, path)
    except EyrieError as exc:
        return ReloadResult(ok=False, error=str(exc), problems=[str(exc)], at=utcnow())
    except Exception as exc:  # whatever the file is, it must not end the daemon
        error = f"{path}: cannot be read: {type(exc).__name__}: {exc}"
        return ReloadResult(ok=False, error=error, problems=[error], at=utcnow())
    before = in_force or {}
    passed = {n for n, now in new.resolve_all().items() if before.get(n) == now and n not in failed}
    problems = await anyio.to_thread.run_sync(declaration_problems, new, store, passed)
    if problems:
        count = f"{len(problems)} instance{'s' if len(problems) > 1 else ''}"
        error = f"{path}: {count} could never run: {'; '.join(problems)}"
        return ReloadResult(ok=False, error=error, problems=problems, at=utcnow())
    return new


def declaration_problems(fleet: FleetFile, store: Store, passed: Collection[str] = ()) -> list[str]:
    """Why each declaration of ``fleet`` (but those in ``passed``) could never run; empty when all can."""
    problems = []
    for name, resolved in fleet.resolve_all().items():
        if name in passed:
            continue
        try:
            check_declaration(resolved, store)
        except ConfigurationError as exc:
            problems.append(str(exc))
    return problems


async def fallback_fleet(run_dir: Path, store: Store) -> tuple[FleetFile, str]:
    """The fleet to run while the file is invalid at start, and words for it."""
    try:
        kept = await anyio.to_thread.run_sync(load_applied, run_dir)
    except EyrieError as exc:
        log.error("last_applied_fleet_unreadable", error=str(exc))
        kept = None
    if kept is None:
        return FleetFile(version=1), "no instances"
    if await anyio.to_thread.run_sync(declaration_problems, kept, store):
        return FleetFile(version=1), "no instances"
    return kept, "the fleet last applied"
