"""``eyried``: the supervisor daemon, in the foreground (systemd runs it the same way)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import click
import structlog

from supervisor import __version__
from supervisor.daemon.daemon import Daemon
from supervisor.errors import DaemonRunning, EyrieError, FleetFileError
from supervisor.logconfig import configure_logging
from supervisor.paths import Home

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Home directory (default $EYRIE_HOME or ~/.eyrie).",
)
@click.option(
    "--config",
    "fleet",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fleet file (default HOME/fleet.yaml).",
)
@click.option("--dev", is_flag=True, help="Pretty console logs; ignore systemd's notify socket.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.version_option(__version__, prog_name="eyried")
def main(home: Path | None, fleet: Path | None, dev: bool, log_level: str) -> None:
    """Run the eyrie supervisor in the foreground.

    \b
    Examples:
      eyried --dev                      # the fleet in ~/.eyrie, console logs
      eyried --home /srv/agents         # another home
      kill -HUP $(cat ~/.eyrie/run/eyried.pid)    # reload fleet.yaml
    """
    configure_logging(dev=dev, level=log_level)
    log = structlog.get_logger("supervisor.daemon")
    resolved = Home.resolve(home)
    if dev:
        os.environ.pop("NOTIFY_SOCKET", None)
    daemon = Daemon(resolved, fleet_path=fleet.absolute() if fleet else None, dev=dev)
    try:
        anyio.run(daemon.run)
    except DaemonRunning as exc:
        click.echo(f"eyried: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    except FleetFileError as exc:
        click.echo(f"eyried: invalid fleet file: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except EyrieError as exc:
        log.error("daemon_failed", error=str(exc))
        click.echo(f"eyried: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    if daemon.reexec_requested:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "supervisor.daemon", *sys.argv[1:]])
    sys.exit(EXIT_OK)
