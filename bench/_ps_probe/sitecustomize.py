"""Where one ``eyriectl ps`` spends its time, from both ends: with this directory on ``PYTHONPATH`` and
``EYRIE_PS_PHASES=PATH`` set, the daemon and every ``eyriectl`` process append one JSON line each to PATH
when they exit: named moments on ``time.monotonic()`` (one clock for every process of the machine), read
back by ``bench.ps_phases``. Other processes load it and do nothing.

The daemon notes each control connection (accepted, request head in, each write, closed; keyed by the
peer's pid), each listing (handler start and end, its waits for the fleet file and config hashes, the body's
encoding), every garbage collection and every heap settling. An ``eyriectl`` notes its start, the quick
path's entry, the connection, the request sent, the answer's head and body, the JSON parsed, the table
rendered, the output written and its exit. Each patch wraps a function after its module ran, so the code
measured is the product's own.
"""

from __future__ import annotations

import atexit
import gc
import importlib.machinery
import os
import sys
import time

TYPE_CHECKING = False  # typing itself is not imported: it would inflate the client's start-up

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_PATH = os.environ.get("EYRIE_PS_PHASES")
_now = time.monotonic
_marks: list[tuple[str, float, object]] = []


def mark(name: str, detail: object = None) -> None:
    _marks.append((name, _now(), detail))


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(name + ".start")
        try:
            return fn(*args, **kwargs)
        finally:
            mark(name + ".end")

    return wrapper


def _timed_async(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(name + ".start")
        try:
            return await fn(*args, **kwargs)
        finally:
            mark(name + ".end")

    return wrapper


def _patch_protocol(module: Any) -> None:
    cls = module.HeaderTimeoutProtocol
    made, received, lost = cls.connection_made, cls.data_received, cls.connection_lost

    def connection_made(self: Any, transport: Any) -> None:
        import socket
        import struct

        sock = transport.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            self._probe_peer = struct.unpack("3i", creds)[0]
        except (OSError, AttributeError):
            self._probe_peer = 0
        mark("conn.accepted", self._probe_peer)
        write = transport.write

        def probed_write(data: Any) -> None:
            write(data)
            mark("conn.write", (self._probe_peer, len(data), transport.get_write_buffer_size()))

        transport.write = probed_write
        made(self, transport)

    def data_received(self: Any, data: bytes) -> None:
        mark("conn.received", (getattr(self, "_probe_peer", 0), len(data)))
        received(self, data)

    def connection_lost(self: Any, exc: Exception | None) -> None:
        mark("conn.lost", getattr(self, "_probe_peer", 0))
        lost(self, exc)

    cls.connection_made, cls.data_received, cls.connection_lost = (
        connection_made,
        data_received,
        connection_lost,
    )


def _listing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The listing's start and end with the main thread's CPU time at each (wall ≫ CPU: it waited)."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark("listing.start", time.thread_time())
        try:
            return await fn(*args, **kwargs)
        finally:
            mark("listing.end", time.thread_time())

    return wrapper


def _patch_inventory(module: Any) -> None:
    cls = module.Inventory
    cls.instances = _listing(cls.instances)
    cls._declared_now = _timed_async("listing.fleet_file", cls._declared_now)
    cls._config_hashes_now = _timed_async("listing.config_hashes", cls._config_hashes_now)


def _patch_app(module: Any) -> None:
    module._instance_list = _timed("listing.body", module._instance_list)


def _patch_gc_settle(module: Any) -> None:
    module.settle_heap = _timed("settle", module.settle_heap)


def _patch_front(module: Any) -> None:
    module._run = _timed("cli.quick", module._run)


def _patch_quick_client(module: Any) -> None:
    conn = module._OperatorConnection
    conn.connect = _timed("cli.connect", conn.connect)
    module.QuickClient.get = _timed("cli.get", module.QuickClient.get)


def _patch_http_client(module: Any) -> None:
    conn = module.HTTPConnection
    conn.request = _timed("cli.request", conn.request)
    conn.getresponse = _timed("cli.head", conn.getresponse)
    module.HTTPResponse.read = _timed("cli.body", module.HTTPResponse.read)


def _patch_look(module: Any) -> None:
    module.ps_lines = _timed("cli.render", module.ps_lines)


def _patch_session(module: Any) -> None:
    module.Cli.data = _timed("cli.write", module.Cli.data)


_DAEMON_PATCHES: dict[str, Callable[[Any], None]] = {
    "supervisor.control._header_timeout": _patch_protocol,
    "supervisor.daemon.inventory": _patch_inventory,
    "supervisor.control.app": _patch_app,
    "supervisor.daemon._gc": _patch_gc_settle,
}
_CLI_PATCHES: dict[str, Callable[[Any], None]] = {
    "supervisor.cli._front": _patch_front,
    "supervisor.cli._quick_client": _patch_quick_client,
    "http.client": _patch_http_client,
    "supervisor.cli._look": _patch_look,
    "supervisor.cli._session": _patch_session,
}


class _PatchAfterExec:
    """A finder on ``sys.meta_path`` that runs a patch on each named module right after the module's own
    code ran (no ``importlib.abc``: it loads ``typing``, which would inflate the client's start-up)."""

    def __init__(self, patches: dict[str, Callable[[Any], None]]) -> None:
        self._patches = patches

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        patch = self._patches.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _patch_subprocess() -> None:
    import subprocess

    init, run = subprocess.Popen.__init__, subprocess.run

    def popen_init(self: Any, *args: Any, **kwargs: Any) -> None:
        mark("timer.spawn")
        init(self, *args, **kwargs)
        mark("timer.spawned", self.pid)

    subprocess.Popen.__init__ = popen_init  # type: ignore[method-assign]
    subprocess.run = _timed("timer.run", run)


def _gc_marks() -> None:
    def callback(phase: str, info: dict[str, int]) -> None:
        mark("gc." + phase, info["generation"])

    gc.callbacks.append(callback)


def _dump(role: str) -> None:
    import json

    with open(_PATH or os.devnull, "a") as out:
        out.write(json.dumps({"pid": os.getpid(), "role": role, "marks": _marks}) + "\n")


def _cli_exit() -> None:
    mark("cli.exit")
    _dump("cli")


def _install() -> None:
    argv = " ".join(sys.orig_argv)
    if "supervisor.daemon" in argv:
        sys.meta_path.insert(0, _PatchAfterExec(_DAEMON_PATCHES))
        _gc_marks()
        atexit.register(_dump, "daemon")
    elif "bench._compare.client_proc" in argv:
        _patch_subprocess()
        atexit.register(_dump, "timer")
    elif "eyriectl" in argv:
        mark("cli.site")
        sys.meta_path.insert(0, _PatchAfterExec(_CLI_PATCHES))
        atexit.register(_cli_exit)


if _PATH:
    _install()
