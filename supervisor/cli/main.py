"""The ``eyriectl`` entry point.

``ps``, ``list`` and ``status`` run without click (`supervisor.cli._front`); any other command line goes to
the click group (`supervisor.cli._root`, also ``cli`` here), loaded only then.
"""

from __future__ import annotations

import sys

from supervisor.cli._front import run_quick
from supervisor.cli._logging import configure_on_first_import

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from typing import Any

    from supervisor.cli._root import SHORT_HELP, cli

__all__ = ["SHORT_HELP", "cli", "main"]


def main() -> None:
    configure_on_first_import()  # on stderr: stdout is data
    code = run_quick(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from supervisor.cli._root import cli

    cli(prog_name="eyriectl")


def __getattr__(name: str) -> Any:
    if name in ("SHORT_HELP", "cli"):
        from supervisor.cli import _root

        return getattr(_root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
