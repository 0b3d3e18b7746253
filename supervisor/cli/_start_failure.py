"""What a failed start prints, where the operator looks: the instance's last error and the last lines of its
log (which hold eyried's own lines about the attempt), every character a terminal could act on escaped."""

from __future__ import annotations

from supervisor.cli._app import Cli
from supervisor.cli._logfiles import last_lines
from supervisor.cli._render import printable
from supervisor.control.schema import InstanceView
from supervisor.errors import EyrieError
from supervisor.store import Store

__all__ = ["TAIL_LINES", "explain_failed_start"]

TAIL_LINES = 10


def explain_failed_start(cli: Cli, view: InstanceView) -> None:
    """On stderr: ``view``'s last error (unless `view_line` shows it already) and its log's tail."""
    if view.last_error and not (view.status == "error" or view.phase == "backoff"):
        cli.err.print(f"  last error: {printable(view.last_error)}", markup=False)
    try:
        store = Store(cli.home)
        path = store.dir(store.get_by_name(view.name).id) / "logs" / f"{view.framework}.log"
        lines = last_lines(path, TAIL_LINES)
    except (OSError, EyrieError) as exc:
        cli.err.print(f"  (its log cannot be read: {printable(str(exc))})", markup=False)
        return
    if not lines:
        cli.err.print(f"  {path} is empty", markup=False)
        return
    counted = "last line" if len(lines) == 1 else f"last {len(lines)} lines"
    cli.err.print(f"  {counted} of {path}:", markup=False)
    for line in lines:
        cli.err.print(f"  | {printable(line)}", markup=False)
