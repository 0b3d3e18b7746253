"""The operator API served in-process on both operator sockets, as eyried serves it, for client tests."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator

import anyio

from supervisor.control.app import create_app
from supervisor.control.server import Listening, serve
from supervisor.paths import Home
from supervisor.testing import MemoryTarget

# Binds an abstract name and reports what any client sends it, for the client to refuse it.
SQUATTER = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0" + sys.argv[1][1:])
s.listen(8)
print("listening", flush=True)
s.settimeout(None)
while True:
    conn, _ = s.accept()
    conn.settimeout(2)
    try:
        data = conn.recv(65536)
    except OSError:
        data = b""
    print(f"received {len(data)}", flush=True)
    conn.close()
"""


def shown(address: str) -> str:
    return "@" + address.removeprefix("\0")


@contextlib.asynccontextmanager
async def operator_api(target: MemoryTarget, home: Home) -> AsyncIterator[Listening]:
    """The control API on both operator sockets, with the home's pid file naming this process, as
    eyried's lock writes it."""
    home.ensure_run_dir()
    home.pid_file.write_text(f"{os.getpid()}\n")
    app = create_app(target, keepalive=0.05)
    async with anyio.create_task_group() as tg:
        listening: Listening = await tg.start(
            functools.partial(serve, app, socket_path=home.socket_path, abstract_socket=home.operator_socket)
        )
        yield listening
        tg.cancel_scope.cancel()
