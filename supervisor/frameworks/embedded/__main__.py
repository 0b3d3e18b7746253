"""``python -m supervisor.frameworks.embedded --config FILE``: run the embedded gateway in the foreground.

Exit codes: 0 after SIGTERM or SIGINT; 2 for a usage error, a bad or missing config, or an address it cannot
listen on.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from supervisor.frameworks.embedded._config import ConfigError, load_config
from supervisor.frameworks.embedded._server import Gateway

__all__ = ["main"]

_USAGE = "usage: python -m supervisor.frameworks.embedded --config FILE"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _config_path(argv: list[str]) -> str | None:
    """The one option there is, without argparse (its imports cost every gateway memory)."""
    if len(argv) == 2 and argv[0] == "--config" and argv[1]:
        return argv[1]
    if len(argv) == 1 and argv[0].startswith("--config=") and len(argv[0]) > len("--config="):
        return argv[0].removeprefix("--config=")
    return None


def _ignore(signum: int, frame: object) -> None:
    """The signal's number reaches the serving loop through the wakeup fd; nothing to do here."""


def _catch_stop_signals() -> tuple[socket.socket, socket.socket]:
    """From now on SIGTERM and SIGINT only write their number to the pair's second socket, to be read from
    the first. Both must stay open (referenced) for as long as the signals should be caught."""
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _ignore)
    return wake_read, wake_write


def main(argv: list[str] | None = None) -> int:
    wakeup, _wake_write = _catch_stop_signals()  # first: a stop during start-up still ends with exit 0
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(f"{_USAGE}\n\n{__doc__}")
        return 0
    path = _config_path(args)
    if path is None:
        print(
            f"{_USAGE}\nembedded: expected --config FILE, got {' '.join(args) or 'nothing'}", file=sys.stderr
        )
        return 2
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"embedded: {exc}", file=sys.stderr)
        return 2
    try:
        gateway = Gateway(config)
    except OSError as exc:
        print(
            f"embedded: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 2
    print(f"EMBEDDED_READY port={config.port}", flush=True)
    if os.environ.get("EYRIE_CREATE_TALON"):  # an errand for the agent API; its client loads only then
        from supervisor.frameworks.embedded._agentapi import start_errands

        start_errands()
    try:
        received = gateway.serve(wakeup)
    finally:
        gateway.close()
    print(f"embedded: {signal.Signals(received).name} received, exiting", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
