"""``eyried``: the supervisor daemon, in the foreground (systemd runs it the same way).

SIGUSR2 re-executes it in place, the upgrade path: the daemon stops its API, detaches the engine (the agents
keep running) and ``execv``s the same command line under the same pid, so systemd sees no restart and the
agents stay its children. The new image adopts them. Every descriptor the old image held is close-on-exec;
the daemon's signals are blocked in every thread for its whole life and stay blocked across the exec, so a
request that arrives meanwhile waits, pending, for the new image (`supervisor.daemon._signals`).
"""

from __future__ import annotations

import gc

_COLLECTING = gc.isenabled()
gc.disable()  # until the imports below are done: their ~120 collections free almost nothing, 3 % of their CPU

import faulthandler
import os
import sys
from pathlib import Path
from typing import NoReturn

from supervisor._own_env import DAEMON_ONLY, set_for_daemon
from supervisor.daemon._no_plugins import skip_plugin_scan

# pydantic looks for plugins (an entry-point scan of every installed distribution, ~5 ms) when it builds its
# first validator; the daemon has none. Its children do not inherit the setting (`supervisor._own_env`).
set_for_daemon("PYDANTIC_DISABLE_PLUGINS", "__all__")
skip_plugin_scan()  # with plugins off, nothing needs the loader's `importlib.metadata` (`_no_plugins`)

import anyio
import click

# The daemon renders no rich tracebacks; structlog imports rich (and pygments, ~3 MiB) whenever it can.
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
import structlog

from supervisor.daemon._malloc import one_malloc_arena
from supervisor.daemon._signals import block_signals
from supervisor.daemon.daemon import Daemon
from supervisor.daemon.outcome import Reexec
from supervisor.engine.open_files import reexec_env, take_note
from supervisor.errors import DaemonRunning, EyrieError, FleetFileError
from supervisor.logconfig import configure_logging
from supervisor.paths import Home

if _COLLECTING:
    # What the imports made sits in the youngest generation: the first collection after `gc.enable` would walk
    # all of it (~18 ms before the first spawn) to free ~1,000 objects (~0.4 MB: classes the standard library
    # replaces with C ones, signatures parsed once). Freezing and unfreezing moves it to the oldest generation
    # unwalked, where an importer's full collections still reach it; eyried freezes it in `main` (that garbage
    # with it, until a reload's settling unfreezes: a full walk after fleet ready cost 130 ms at N = 200).
    gc.freeze()
    gc.unfreeze()
    gc.enable()

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

REEXEC_ENV = "EYRIED_REEXEC_AT"
"""Set for the new image only (and removed at once, so no agent inherits it): ``time.monotonic()`` of the
moment the old image began re-executing. Its presence says the process's children are the daemon's own."""


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
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Overrides daemon.log_level in the fleet file (default info).",
)
@click.version_option(package_name="eyrie-supervisor", prog_name="eyried")
def main(home: Path | None, fleet: Path | None, dev: bool, log_level: str | None) -> None:
    """Run the eyrie supervisor in the foreground.

    \b
    Examples:
      eyried --dev                      # the fleet in ~/.eyrie, console logs
      eyried --home /srv/agents         # another home
      kill -HUP $(cat ~/.eyrie/run/eyried.pid)    # reload fleet.yaml
    """
    block_signals()  # before any thread starts, so that every thread has them blocked (see `_signals`)
    one_malloc_arena()
    reexecuted_at = _reexec_marker()
    # When systemd's watchdog ends a stuck daemon (SIGABRT), the journal shows where its threads were stuck.
    faulthandler.enable()
    configure_logging(dev=dev, level=log_level or "info")
    log = structlog.get_logger("supervisor.daemon")
    limit = take_note()  # raised once the fleet needs it (see `open_files`)
    log.debug("open_files_limit", soft=limit.soft, hard=limit.hard, agents=limit.agents)
    resolved = Home.resolve(home)
    if dev:
        os.environ.pop("NOTIFY_SOCKET", None)
    daemon = Daemon(
        resolved,
        fleet_path=fleet.absolute() if fleet else None,
        reexecuted_at=reexecuted_at,
        log_level=log_level,
    )
    gc.freeze()  # what the imports made lives as long as the process: the start-up's collections skip it
    try:
        outcome = anyio.run(daemon.run)
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
    if isinstance(outcome, Reexec):
        _reexec(outcome)
    sys.exit(EXIT_OK)


def _reexec_marker() -> float | None:
    raw = os.environ.pop(REEXEC_ENV, None)
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _reexec(outcome: Reexec) -> NoReturn:
    """Replace this process image with the same command line (the installed, maybe upgraded, eyried).

    `Daemon.run` returned with its signals blocked; a stop request it received after the re-exec began is
    raised again here, so that it waits, pending, for the new image.
    """
    log = structlog.get_logger("supervisor.daemon")
    os.environ[REEXEC_ENV] = repr(outcome.began)
    os.environ.update(reexec_env())
    for name in DAEMON_ONLY:  # the next image sets them again, as its own
        os.environ.pop(name, None)
    for signum in outcome.carried_signals:
        os.kill(os.getpid(), signum)  # process-directed: the next image's listener thread accepts it
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, sys.orig_argv)
    except OSError as exc:
        log.error("reexec_failed", error=exc.strerror or str(exc), executable=sys.executable)
        click.echo(
            f"eyried: cannot re-execute {sys.executable}: {exc.strerror or exc}; the agents keep running"
            " and the next eyried adopts them",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
