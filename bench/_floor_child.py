"""A floor process for ``bench/start_floor.py`` and ``bench/rss_floor.py``: only the irreducible part of what
``eyried`` does, so that the gap between it and the daemon measured the same way is the daemon's own code.

    python -m bench._floor_child [--libraries] [--daemon-modules] [--spawn N --logs DIR] [--serve SOCKET]

``--libraries`` imports what the daemon needs before its first spawn (anyio, click, pydantic with one model
built, ruamel.yaml, structlog with rich held absent, as ``eyried`` holds it), collection paused meanwhile as
the daemon does. ``--daemon-modules`` imports ``supervisor.daemon.main`` as well (eyrie's own modules, no work
done). ``--spawn N`` then starts N ``sleep infinity`` children the way the daemon starts an unconfined agent:
``posix_spawn`` of the PATH-resolved program, its own process group, stdin from ``/dev/null``, stdout and
stderr appended to a log file of its own (``DIR/<i>.log``), an empty signal mask, the environment inherited.
``--serve SOCKET`` imports starlette and uvicorn and serves an empty Starlette app on a Unix socket with
uvicorn's h11 protocol, driven as the daemon drives it (``startup`` inside ``anyio.run``), with the daemon's
malloc settings (one arena; the heap trimmed once serving). The process then waits until it is signalled.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import sys
from pathlib import Path


def import_libraries() -> None:
    """The libraries the daemon loads before its first spawn, and the first model (pydantic's plugin loader,
    ``hashlib`` and ``zoneinfo`` come with it)."""
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    import anyio  # noqa: F401
    import click  # noqa: F401
    import pydantic
    import ruamel.yaml  # noqa: F401
    import structlog  # noqa: F401

    class _First(pydantic.BaseModel):
        name: str

    _First(name="floor")


def spawn_sleepers(n: int, logs: Path) -> list[int]:
    """N ``sleep infinity`` children, each in its own process group with its own log file."""
    program = shutil.which("sleep")
    if program is None:
        raise SystemExit("no sleep on PATH")
    env = dict(os.environ)
    pids = []
    for i in range(n):
        log_fd = os.open(logs / f"{i}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            actions = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ]
            pids.append(
                os.posix_spawn(
                    program, ["sleep", "infinity"], env, file_actions=actions, setpgroup=0, setsigmask=()
                )
            )
        finally:
            os.close(log_fd)
    return pids


def serve(socket_path: Path) -> None:
    """An empty Starlette app served by uvicorn on ``socket_path`` until the process is signalled."""
    import ctypes
    import socket

    import anyio
    import uvicorn
    from starlette.applications import Starlette

    libc = ctypes.CDLL(None)
    libc.mallopt(-8, 1)  # M_ARENA_MAX, as eyried sets it before its first thread

    async def run() -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(socket_path))
        sock.listen(128)
        config = uvicorn.Config(
            Starlette(), http="h11", ws="none", lifespan="on", log_config=None, access_log=False
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)  # as eyried builds its server
        await server.startup(sockets=[sock])
        libc.malloc_trim(0)  # as eyried compacts its heap once served
        await anyio.sleep_forever()

    anyio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--libraries", action="store_true")
    parser.add_argument("--daemon-modules", action="store_true")
    parser.add_argument("--spawn", type=int, default=0)
    parser.add_argument("--logs", type=Path)
    parser.add_argument("--serve", type=Path)
    args = parser.parse_args()
    collecting = gc.isenabled()
    gc.disable()
    if args.libraries:
        import_libraries()
    if args.daemon_modules:
        import supervisor.daemon.main  # noqa: F401
    if collecting:
        gc.enable()
    if args.spawn:
        spawn_sleepers(args.spawn, args.logs)
    if args.serve:
        serve(args.serve)
    else:
        signal.pause()


if __name__ == "__main__":
    main()
