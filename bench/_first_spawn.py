"""``eyried`` with a note taken at its first agent spawn: run as ``python -m bench._first_spawn ARGS`` (the
daemon's own arguments). The note (JSON, to ``$EYRIE_BENCH_FIRST_SPAWN``): the process's CPU seconds and
``time.monotonic()`` at the first call of the C library's ``posix_spawn`` (or ``subprocess.Popen``), and every
module loaded by then, in import order. A ``first-spawn`` line on stderr marks the moment among ``-X
importtime``'s. The spawn module (ctypes and its own few lines) is imported first, to wrap its call. With
``EYRIE_BENCH_EXIT_AT_SPAWN=1`` the process ends there, spawning nothing (for counting instructions up to it
under valgrind; the home is left as it was)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from supervisor.engine import _posix_spawn

NOTE = os.environ.pop("EYRIE_BENCH_FIRST_SPAWN", "")
EXIT_AT_SPAWN = os.environ.pop("EYRIE_BENCH_EXIT_AT_SPAWN", "") == "1"


def _take_note() -> None:
    global NOTE
    if EXIT_AT_SPAWN:
        os._exit(0)
    if not NOTE:
        return
    path, NOTE = NOTE, ""
    note = {"cpu": time.process_time(), "monotonic": time.monotonic(), "modules": list(sys.modules)}
    sys.stderr.write("first-spawn\n")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(note, out)


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("os.posix_spawn", "subprocess.Popen"):
        _take_note()


def _noting(spawn: Any) -> Any:
    def call(*args: Any) -> Any:
        _take_note()
        return spawn(*args)

    return call


sys.addaudithook(_on_audit)
if _posix_spawn._CALLS is not None:
    _posix_spawn._CALLS.spawn = _noting(_posix_spawn._CALLS.spawn)

from supervisor.daemon.main import main  # noqa: E402  (after the hooks: the imports are what is measured)

main()
