"""What ``ps``/``list`` and ``status`` do, without click: `supervisor.cli._front` runs them directly and the
click commands of `supervisor.cli._inspect` call the same functions.

``ps`` still answers with the daemon down, from what is recorded on disk (the fleet file and each
``instance.json``), and says so; it then exits 3 like every command that needed the daemon.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

from supervisor.cli._exits import EXIT_DAEMON_DOWN, EXIT_DEGRADED, Failure
from supervisor.cli._plain import degraded, ps_lines, ps_notes, status_lines, use_colour
from supervisor.cli._quick_client import QuickClient
from supervisor.control._ps_row import PS_VIEW
from supervisor.errors import DaemonNotRunning, EyrieError

TYPE_CHECKING = False  # typing stays unloaded at run time: eyriectl's quick path (supervisor.cli._front)
if TYPE_CHECKING:
    from typing import Any

    from supervisor.cli._session import Cli
    from supervisor.control.schema import InstanceView
    from supervisor.paths import Home

__all__ = ["recorded_views", "show_instances", "show_status"]

_OFFLINE_WIDTH = 250
"""The table's width on a pipe: wide enough that no cell is shortened."""


def recorded_views(home: Home) -> tuple[list[InstanceView], str]:
    """The fleet as recorded on disk, in the daemon's ps shape (no DRIFT: that needs the running config).

    Returns the views and a warning ("" when the fleet file was read).
    """
    from supervisor.daemon.views import instance_view, missing_view
    from supervisor.fleet import FleetFile, load_fleet  # the parser: only this path needs it
    from supervisor.store import Store

    warning = ""
    fleet: FleetFile | None = FleetFile(version=1)
    if home.fleet_file.exists():
        try:
            fleet = load_fleet(home.fleet_file)
        except EyrieError as exc:
            fleet, warning = None, f"fleet file unreadable, declared instances unknown: {exc}"
    declared = {d.name: d for d in fleet.instances} if fleet is not None else {}
    stored = {inst.name: inst for inst in Store(home).list()}
    views = [
        instance_view(stored[name], decl=decl, drift=False) if name in stored else missing_view(decl)
        for name, decl in declared.items()
    ]
    views += [
        instance_view(inst, decl=None, drift=False, declared_fleet_known=fleet is not None)
        for name, inst in stored.items()
        if name not in declared
    ]
    return views, warning


def show_instances(cli: Cli, as_json: bool, project: str | None = None) -> None:
    """``ps`` and ``list``: the table (or the JSON list) of instances, ``project``'s only when given."""
    offline = False
    # The table needs only what it shows (an eyried older than ``view`` sends whole rows: the same table).
    path = "/v1/instances" if as_json else f"/v1/instances?view={PS_VIEW}"
    try:
        with QuickClient(cli.home) as client:
            rows: list[dict[str, Any]] = client.get(path)
    except DaemonNotRunning:
        offline = True
        views, warning = recorded_views(cli.home)
        rows = [view.model_dump(mode="json") for view in views]
        if warning:
            cli.note(warning)
    if project is not None:
        rows = [row for row in rows if row.get("project_id") == project]
    if as_json:
        cli.data(json.dumps(rows, indent=2))
    elif rows:
        width = _OFFLINE_WIDTH
        if sys.stdout.isatty():
            import shutil  # with its archive modules: only a terminal needs its width

            width = shutil.get_terminal_size().columns
        lines = ps_lines(rows, width=width, colour=use_colour(sys.stdout))
        cli.data("\n".join([*lines, *ps_notes(rows)]))
    elif project is not None:
        cli.note(f"no instances in project {project!r} (`eyriectl projects` lists the projects)")
    else:
        cli.note(f"no instances (declare some with `eyriectl add` or `eyriectl init`; home {cli.home.root})")
    if offline:
        from supervisor.daemon.absent import daemon_not_running

        raise Failure(
            f"{daemon_not_running(cli.home)}\n(shown: the state recorded on disk, which may be stale)",
            EXIT_DAEMON_DOWN,
        )


def show_status(cli: Cli, as_json: bool) -> None:
    """``status`` without a name: the daemon's status, and whether the fleet is degraded (exit 4).

    One request: the status answer carries the instances not as desired (``not_as_desired``); an eyried
    older than that field is asked for the whole listing as well, and judged the same way.
    """
    with QuickClient(cli.home) as client:
        result: dict[str, Any] = client.get("/v1/status")
        rows: list[Mapping[str, Any]] | None = result.pop("not_as_desired", None)
        if not isinstance(rows, list):
            rows = client.get("/v1/instances")
    reasons = degraded(result, rows)
    if as_json:
        cli.data(json.dumps({**result, "degraded": reasons}, indent=2))
    else:
        cli.data("\n".join(status_lines(result, reasons)))
    if reasons:
        raise Failure("", EXIT_DEGRADED)
