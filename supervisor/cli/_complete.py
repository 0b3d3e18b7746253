"""Shell completion of instance names, for click's own completion (``_EYRIECTL_COMPLETE=bash_source``).

The names come from the fleet file, read with the same limits as the daemon's loader (size, depth, alias
expansion). Completion runs inside the user's shell at every Tab: a missing, broken or hostile fleet file
completes nothing, and never prints a traceback there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.paths import ID_PATTERN, Home

if TYPE_CHECKING:
    import click
    from click.shell_completion import CompletionItem

__all__ = ["complete_instance_names", "declared_names"]


def declared_names(home: Home) -> list[str]:
    """The instance names fleet.yaml declares, in its order; empty when it cannot be read."""
    from supervisor.fleet import load_fleet

    try:
        fleet = load_fleet(home.fleet_file)
    except Exception:  # whatever the file holds, a completion answers, at worst with nothing
        return []
    return [decl.name for decl in fleet.instances if ID_PATTERN.fullmatch(decl.name)]


def complete_instance_names(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The declared names that start with what was typed (for a ``NAME`` or ``NAMES`` argument)."""
    from click.shell_completion import CompletionItem  # only a completion needs it, not every command

    home = ctx.find_root().params.get("home")
    try:
        resolved = Home.resolve(home if isinstance(home, Path) else None)
    except Exception:  # an unusable $EYRIE_HOME completes nothing
        return []
    return [CompletionItem(name) for name in declared_names(resolved) if name.startswith(incomplete)]
